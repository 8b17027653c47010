"""Hooks: metrics and the decision log subscribe to the pipeline's events."""

import pytest
from pydantic import BaseModel

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.program import Program
from openfirst.compiler.task import compile_task
from openfirst.pipeline import Item, Pipeline

GOOD = '{"city":"Oslo"}'


class City(BaseModel):
    """Extract the city."""

    city: str


def two_models(local):
    return Pipeline.single(Program(compile_task(City), local), task="city")


def test_hooks_see_every_generation_and_every_outcome_and_a_failing_hook_loses_nothing():
    local = ScriptedBackend([GOOD], cycle=True)
    pipeline = two_models(local)
    seen, done = [], []
    pipeline.hooks.on("generation", lambda model, r: seen.append(model))
    pipeline.hooks.on("outcomes", lambda endpoint, task, outs, s: done.append((endpoint, task, len(outs))))
    pipeline.hooks.on("outcomes", lambda *a: 1 / 0)
    out = pipeline.run_sync("city", [Item("a"), Item("b")])
    assert seen == ["local", "local"] and done == [("extract", "city", 2)] and all(o.ok for o in out)
    with pytest.raises(ValueError):
        pipeline.hooks.on("no such event", print)
