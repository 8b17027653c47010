"""The project's one exception root and its router-side subclasses."""

from __future__ import annotations


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


class LogFormatError(OpenFirstError):
    """An outcome log has bad lines; `problems` lists (file, line, reason)."""

    def __init__(self, message: str, problems: list[tuple[str, int, str]], **kw):
        super().__init__(message, **kw)
        self.problems = problems


class DataError(OpenFirstError):
    """A public data set is missing, incomplete or fails its checksum."""


class ArtifactError(OpenFirstError):
    """A router artifact is missing, tampered with or incompatible."""


class NotFittedError(OpenFirstError):
    """A model was used before it was fitted."""
