"""Hooks: metrics, the decision log and budgets subscribe to the pipeline's events instead of being threaded
through it (instructor's `hooks.on(...)` / `emit_*` in spirit).

Events and their arguments:
- "generation" (model name, Result | Failure): a program ran on a model (each attempt batch's outcome)
- "outcomes" (endpoint, task or None, list[RoutedOutcome], seconds): inputs are done, cut off, or only routed
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable

log = logging.getLogger("openfirst.pipeline")
EVENTS = ("generation", "outcomes")


class Hooks:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Call `handler(*args)` on every `event` (one of EVENTS)."""
        if event not in EVENTS:
            raise ValueError(f"unknown pipeline event {event!r}: one of {', '.join(EVENTS)}")
        self._handlers[event].append(handler)

    def emit(self, event: str, *args: Any) -> None:
        """Run the event's handlers in order; a handler that raises is logged, and the others still run (a
        metrics bug must not lose an answer)."""
        for handler in self._handlers.get(event, ()):
            try:
                handler(*args)
            except Exception:  # noqa: BLE001 - a subscriber's failure is its own
                log.exception("pipeline hook %s for %r failed", getattr(handler, "__name__", handler), event)
