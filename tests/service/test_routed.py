"""The one routed-execution path: each input on its target, one fallback where the policy allows it."""

import asyncio

import pytest

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import ConnectionFailed
from openfirst.compiler.program import Failure, ProgramOptions, Result
from openfirst.compiler.task import load_task
from openfirst.service.routed import RoutedProgram
from tests.service.conftest import GOOD_TICKET, TASK


def routed(local, frontier=None):
    backends = {"local": local, **({"frontier": frontier} if frontier else {})}
    return RoutedProgram.from_backends(load_task(TASK), backends, ProgramOptions(max_retries=0))


def test_each_input_runs_on_its_target():
    local, frontier = ScriptedBackend([GOOD_TICKET], cycle=True), ScriptedBackend([GOOD_TICKET], cycle=True)
    out = routed(local, frontier).run_many(["a", "b", "c"], ["local", "frontier", "local"])
    assert [o.target for o in out] == ["local", "frontier", "local"] and all(isinstance(o.outcome, Result) for o in out)
    assert [c[-1]["content"] for c in local.seen] == ["a", "c"] and len(frontier.seen) == 1


def test_fallback_only_where_allowed_and_only_once():
    local = ScriptedBackend([ConnectionFailed("down")], cycle=True)
    frontier = ScriptedBackend([ConnectionFailed("down too")], cycle=True)
    program = routed(local, frontier)
    out = program.run_many(["a", "b"], ["local", "local"], may_fall_back=lambda i, failure: i == 1)
    assert out[0].fallback_from is None and out[0].target == "local"
    assert (out[1].target, out[1].fallback_from) == ("frontier", "local")
    assert isinstance(out[1].fallback_error, ConnectionFailed) and isinstance(out[1].outcome, Failure)
    assert len(frontier.seen) == 1  # no second fallback back to local


def test_no_fallback_without_the_other_program_and_bad_arguments():
    out = routed(ScriptedBackend([ConnectionFailed("down")])).run_many(["a"], ["local"], lambda i, f: True)
    assert out[0].fallback_from is None and isinstance(out[0].outcome, Failure)
    with pytest.raises(ValueError):
        asyncio.run(routed(ScriptedBackend([])).arun_many(["a"], []))
