"""Fine-tuning's errors, under the project's one root."""

from __future__ import annotations

from openfirst.core.errors import OpenFirstError


class FinetuneError(OpenFirstError):
    """Training data, training or a tuned-model artifact is unusable."""


class TaskMismatch(FinetuneError):
    """A tuned model was asked to serve a task (schema) it was not tuned on."""
