"""One store's health, as a circuit breaker: a failure (an error or a timeout) marks it down and no call reaches
it for `retry_after_s`, so requests meanwhile take the fail-closed path at once instead of each waiting for a
timeout; the first call after that tries again."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger("openfirst.state")


class StoreDown(Exception):
    """The store is down (or was found down less than `retry_after_s` ago)."""


class Breaker:
    def __init__(self, name: str, retry_after_s: float):
        self.name, self.retry_after_s = name, retry_after_s
        self.up = True
        self.error: str | None = None
        self.since = time.time()
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
        """fn(), or StoreDown where the store is down or `fn` raised one of `errors`."""
        if not self.up and time.monotonic() < self._retry_at:
            raise StoreDown(self.error or f"{self.name} is down")
        try:
            value = fn()
        except errors as exc:
            self._set(False, f"{type(exc).__name__}: {exc}")
            raise StoreDown(self.error) from exc
        self._set(True, None)
        return value

    def fail(self, error: str) -> None:
        self._set(False, error)

    def _set(self, up: bool, error: str | None) -> None:
        with self._lock:
            if not up:
                self._retry_at = time.monotonic() + self.retry_after_s
            changed = up != self.up
            self.up, self.error = up, error
            if changed:
                self.since = time.time()
        if changed:
            (log.info if up else log.warning)("%s is %s%s", self.name, "back" if up else "down",
                                              f": {error}" if error else "")

    def state(self) -> dict[str, Any]:
        return {"up": self.up, "since": round(self.since, 3), "error": self.error}
