"""The prompt a tuned model is trained on and served with: the compiled task's own messages (instructions and the
output's outline, no examples, no retry feedback) and, as the target, the output as the grammar writes it.

Training renders the prompt exactly as `Program` renders it at serving time, through the same
`CompiledTask.messages`, so a tuned model sees in production what it saw in training. The artifact's card records
the choice (`prompt`), and serving follows it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from openfirst.compiler.task import CompiledTask, PromptSchema


@dataclass(frozen=True)
class TunedPrompt:
    """How a tuned model's prompt describes the task. No examples by default: the tuned weights carry what the
    examples taught (a one-off check, not in benchmarks/results: serving the SNIPS model with 3 retrieved examples
    lowered its slot F1 from 0.634 to 0.600 on 140 utterances), and shorter prompts train faster."""

    schema_in_prompt: PromptSchema = "outline"
    examples: bool = False

    def task(self, task: CompiledTask) -> CompiledTask:
        """The task as a tuned model serves it (without examples unless the card keeps them)."""
        return task if self.examples else dataclasses.replace(task, examples=[])

    def messages(self, task: CompiledTask, text: str) -> list[dict[str, str]]:
        return self.task(task).messages(text, (), self.schema_in_prompt, "turns" if self.examples else None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TunedPrompt":
        return cls(**{k: d[k] for k in ("schema_in_prompt", "examples") if k in d})


def target_text(output: dict[str, Any]) -> str:
    """An output as constrained decoding writes it: compact separators, no free whitespace (grammar.JSON_OPTIONS),
    fields in schema order (the examples' loader dumps them through the task's model)."""
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))
