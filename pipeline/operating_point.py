"""The router's operating point as the service configures it (`[router]`): the artifact's own threshold, an
override, or the threshold that sends a frontier share of calibration queries; and the share the drift monitor
expects."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("openfirst.pipeline")


def operating_point(config: Any, router: Any) -> tuple[float | None, Any]:
    """(the service's threshold, None: the artifact's own; the calibration queries' routing scores)."""
    if router is None:
        return None, None
    if config.router.frontier_share is not None:
        return calibrate(router, config.router.calibration, config.router.frontier_share)
    return config.router.threshold, None


def expected_share(config: Any, router: Any) -> float | None:
    """The frontier share the drift monitor expects: the configured target, the configured share, or the
    artifact's (which belongs to its own threshold, not to an override)."""
    for share in (config.router.target_frontier_share, config.router.frontier_share):
        if share is not None:
            return share
    if router is not None and config.router.threshold is None:
        return getattr(router, "expected_frontier_share", None)  # a many-model router has no frontier share
    return None


def calibrate(router: Any, queries_from: str, share: float) -> tuple[float, Any]:
    """(the threshold that sends `share` of the calibration queries to the frontier, their routing scores);
    embeddings cached on disk."""
    from openfirst.router.policy import threshold_for_share
    from openfirst.router.public_data import load_log_or_public

    queries = load_log_or_public(queries_from, require_local=False).queries
    scores = router.calibration_scores(queries)
    threshold = threshold_for_share(scores, share)
    log.info("threshold %.4f sends %.1f%% of %d calibration queries to the frontier", threshold, 100 * share,
             len(queries))
    return threshold, scores
