"""Held-out evaluation of a model on labelled examples: constrained generation with the task's grammar, each output
compared with its label field by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from openfirst.compiler.task import CompiledTask, output_json
from openfirst.finetune.examples import TrainingExample


@dataclass
class HeldOutScore:
    examples: int
    valid: int
    exact: int  # outputs equal to their label
    fields_right: int  # fields of the schema equal to the label's (both absent counts as right)
    fields: int

    def to_dict(self) -> dict[str, Any]:
        n = max(1, self.examples)
        return {"examples": self.examples, "valid_share": self.valid / n, "exact_share": self.exact / n,
                "field_accuracy": self.fields_right / max(1, self.fields)}


def field_matches(task: CompiledTask, predicted: dict[str, Any] | None, gold: dict[str, Any]) -> tuple[int, int]:
    """(fields right, fields compared) over the schema's top-level properties."""
    names = list(task.json_schema.get("properties", {})) or sorted(set(gold) | set(predicted or {}))
    predicted = predicted or {}
    return sum(predicted.get(k) == gold.get(k) for k in names), len(names)


def score_held_out(examples: Sequence[TrainingExample], tasks: dict[str, CompiledTask],
                   run: Callable[[CompiledTask, str], Any]) -> HeldOutScore:
    """`run(task, text)` returns a validated output or None (failed)."""
    s = HeldOutScore(0, 0, 0, 0, 0)
    for ex in examples:
        task = tasks[ex.task]
        out = run(task, ex.input)
        pred = None if out is None else {k: v for k, v in output_json(out).items() if v is not None}
        gold = {k: v for k, v in ex.output.items() if v is not None}
        s.examples += 1
        s.valid += pred is not None
        s.exact += pred == gold
        right, n = field_matches(task, pred, gold)
        s.fields_right += right
        s.fields += n
    return s
