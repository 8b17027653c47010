"""What every local generation backend returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # False: stopped at max_tokens before the grammar (or EOS) ended it


class LocalBackend(Protocol):
    name: str
    model_name: str

    def tokenizer_info(self): ...

    def generate(self, conversations: Sequence[list[dict[str, str]]], grammar, max_tokens: int,
                 temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]: ...
