"""The one routed-execution path: a compiled task on a local and a frontier backend, each input run on the target
decided for it, and a failed input moved once to the other target where the caller's policy allows it.

The service's engine runs every extraction through it; benchmarks do too (`run_many` is the sync entry).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from openfirst.compiler.backends.base import Backend
from openfirst.compiler.program import Failure, Program, ProgramOptions, Result
from openfirst.compiler.task import CompiledTask

Target = Literal["local", "frontier"]
OTHER: dict[str, Target] = {"local": "frontier", "frontier": "local"}


@dataclass
class Routed:
    """One input's outcome: where it ran last and what came back; if it fell back, where it ran first and the
    error it got there."""

    target: Target
    outcome: Result | Failure
    fallback_from: Target | None = None
    fallback_error: Exception | None = None
    first: Result | Failure | None = None  # the failed first run, when it fell back


class RoutedProgram:
    """`programs`: the task's Program per target ("local" always; "frontier" when the frontier can run it)."""

    def __init__(self, programs: dict[str, Program]):
        if "local" not in programs:
            raise ValueError("a routed program needs a local program")
        self.programs = programs

    @classmethod
    def from_backends(cls, task: CompiledTask, backends: dict[str, Backend],
                      options: ProgramOptions = ProgramOptions()) -> "RoutedProgram":
        return cls({target: Program(task, backend, options) for target, backend in backends.items()})

    async def arun_many(self, texts: Sequence[str], targets: Sequence[Target],
                        may_fall_back: Callable[[int, Failure], bool] = lambda i, failure: False,
                        on_outcome: Callable[[Target, Result | Failure], None] | None = None,
                        escalate: Callable[[int, Result], bool] = lambda i, result: False) -> list[Routed]:
        """Run each text on its target (one batch per target, concurrently); a Failure for which
        `may_fall_back(index, failure)` holds, or a Result for which `escalate(index, result)` holds (the cascade:
        an unsure local answer), runs once more on the other target, if that target has a program."""
        if len(texts) != len(targets):
            raise ValueError("one target per text")
        out: list[Routed | None] = [None] * len(texts)
        await self._run(texts, list(targets), range(len(texts)), out, on_outcome)
        retry = [i for i, r in enumerate(out) if OTHER[r.target] in self.programs and (
            may_fall_back(i, r.outcome) if isinstance(r.outcome, Failure) else escalate(i, r.outcome))]
        if retry:
            first = {i: out[i] for i in retry}
            moved = [OTHER[r.target] if i in first else r.target for i, r in enumerate(out)]
            await self._run(texts, moved, retry, out, on_outcome)
            for i, was in first.items():
                out[i].fallback_from, out[i].first = was.target, was.outcome
                out[i].fallback_error = was.outcome.error if isinstance(was.outcome, Failure) else None
        return out  # type: ignore[return-value]

    def run_many(self, texts: Sequence[str], targets: Sequence[Target],
                 may_fall_back: Callable[[int, Failure], bool] = lambda i, failure: False) -> list[Routed]:
        """Sync `arun_many` (outside an event loop)."""
        return asyncio.run(self.arun_many(texts, targets, may_fall_back))

    async def _run(self, texts: Sequence[str], targets: Sequence[Target], which: Sequence[int],
                   out: list[Routed | None], on_outcome: Callable[[Target, Result | Failure], None] | None) -> None:
        async def run(target: Target, idx: list[int]) -> None:
            for i, r in zip(idx, await self.programs[target].arun_many([texts[i] for i in idx])):
                out[i] = Routed(target, r)
                if on_outcome is not None:
                    on_outcome(target, r)

        groups = {t: [i for i in which if targets[i] == t] for t in ("local", "frontier")}
        await asyncio.gather(*(run(t, idx) for t, idx in groups.items() if idx))
