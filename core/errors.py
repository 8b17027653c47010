"""The project's one exception root, the errors both halves share, and one formatter for Pydantic errors."""

from __future__ import annotations

from typing import Any


class OpenFirstError(Exception):
    """Root of every error openfirst raises on purpose.

    `hint` tells the user what to do; `retryable` says whether the same call may
    succeed if repeated unchanged.
    """

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(OpenFirstError):
    """Invalid option or argument combination."""


class InvalidRequest(OpenFirstError):
    """A request's own options cannot be applied (e.g. an operating point on a service without a router)."""


class LogFormatError(OpenFirstError):
    """An outcome log has bad lines; `problems` lists (file, line, reason)."""

    def __init__(self, message: str, problems: list[tuple[str, int, str]], **kw):
        super().__init__(message, **kw)
        self.problems = problems


class NotFittedError(OpenFirstError):
    """A model was used before it was fitted."""


def describe_validation_error(exc: Any, limit: int = 8) -> str:
    """A Pydantic `ValidationError` as one line: `loc.path: message; ...` (at most `limit` problems, inputs
    never echoed, since they may be large or private)."""
    problems = [f"{'.'.join(map(str, e.get('loc', ()))) or '(root)'}: {e.get('msg', '')}" for e in exc.errors()]
    more = f"; ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
