"""Serving a tuned model: the task as the model was trained to see it (checked against the card's schema hashes,
examples dropped unless the card keeps them, the card's prompt description), on any local engine."""

from __future__ import annotations

from pathlib import Path

from openfirst.compiler.program import ProgramOptions
from openfirst.compiler.task import CompiledTask
from openfirst.finetune.artifact import is_tuned_model, load_card


def tuned_task(model: str | Path | None, task: CompiledTask, options: ProgramOptions,
               explicit: frozenset[str] = frozenset()) -> tuple[CompiledTask, ProgramOptions]:
    """(task, options) to run on `model`: unchanged unless `model` is a tuned model's folder; then the task is
    checked (TaskMismatch) and rendered as in training, and `schema_in_prompt` follows the card unless it is in
    `explicit` (set by the user)."""
    if model is None or not is_tuned_model(model):
        return task, options
    tuned = load_card(model)
    served = tuned.serving_task(task)
    if "schema_in_prompt" not in explicit:
        options = options.model_copy(update={"schema_in_prompt": tuned.prompt.schema_in_prompt})
    return served, options
