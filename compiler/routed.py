"""One compiled task on two backends, a decision per input picking `local` or `frontier`."""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

from compiler.program import Failure, Program, ProgramOptions, Result
from compiler.task import CompiledTask

Target = Literal["local", "frontier"]


class RoutedProgram:
    """`decide(text)` returns "local" or "frontier"; each input runs unchanged on the chosen backend."""

    def __init__(self, task: CompiledTask, local: Any, frontier: Any, decide: Callable[[str], Target],
                 options: ProgramOptions = ProgramOptions()):
        self.decide = decide
        self.programs: dict[str, Program] = {"local": Program(task, local, options),
                                             "frontier": Program(task, frontier, options)}

    def run_many(self, texts: Sequence[str]) -> list[tuple[Target, Result | Failure]]:
        targets = [self.decide(t) for t in texts]
        out: list[Any] = [None] * len(texts)
        for target, program in self.programs.items():
            idx = [i for i, t in enumerate(targets) if t == target]
            if idx:
                for i, r in zip(idx, program.run_many([texts[i] for i in idx])):
                    out[i] = (target, r)
        return out
