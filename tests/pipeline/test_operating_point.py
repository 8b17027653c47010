"""The router's operating point from `[router]`: the artifact's own, an override, or a frontier share of
calibration queries; and the share the drift monitor expects."""

from openfirst.pipeline.operating_point import expected_share, operating_point
from openfirst.router.fake_embedder import hashing_router
from openfirst.service.config import ServiceConfig


def test_the_operating_point_is_the_artifact_s_unless_overridden_or_set_from_a_share(tmp_path, monkeypatch):
    router = hashing_router()
    assert operating_point(ServiceConfig(), router) == (None, None)  # the artifact's own threshold
    assert operating_point(ServiceConfig(router={"threshold": 0.25}), router) == (0.25, None)
    assert operating_point(ServiceConfig(router={"threshold": 0.25}), None) == (None, None)
    log = tmp_path / "calibration.jsonl"
    log.write_text("".join(f'{{"query": "prove the theorem {i}"}}\n{{"query": "refund my order {i}"}}\n'
                           for i in range(5)))
    monkeypatch.setenv("OPENFIRST_CACHE", str(tmp_path))
    monkeypatch.setattr(type(router.embedder_spec), "embedder", lambda spec, **kw: router.embedder)
    threshold, scores = operating_point(ServiceConfig(router={"frontier_share": 0.5, "calibration": str(log)}),
                                        router)
    assert len(scores) == 10 and (scores >= threshold).mean() == 0.5


def test_the_expected_share_is_the_configured_one_or_the_artifact_s_at_its_own_threshold():
    router = hashing_router()
    assert expected_share(ServiceConfig(router={"target_frontier_share": 0.2, "threshold": 0.1}), router) == 0.2
    assert expected_share(ServiceConfig(router={"threshold": 0.1}), router) is None  # not the artifact's any more
    assert expected_share(ServiceConfig(), router) == router.expected_frontier_share
    assert expected_share(ServiceConfig(), None) is None
