"""The one-call API on FAKE scripted backends (fast), and live on the embedded model (slow)."""

import asyncio

import pytest
from pydantic import BaseModel

import openfirst
from openfirst.pipeline.extractor import Extractor
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import OutputValidationError


class Ticket(BaseModel):
    category: str
    priority: int


def test_extract_returns_the_validated_object_or_raises_the_typed_error():
    ok = openfirst.extract(Ticket, "charged twice", local=ScriptedBackend(['{"category":"billing","priority":2}']))
    assert ok == Ticket(category="billing", priority=2)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "charged twice"}]
    local = ScriptedBackend(['{"category":"billing","priority":2}'])
    assert openfirst.extract(Ticket, messages, local=local).priority == 2
    assert local.seen[0][-1]["content"] == "charged twice"
    with pytest.raises(OutputValidationError):
        openfirst.extract(Ticket, "x", local=ScriptedBackend(['{"category":"a"}'], cycle=True))


def test_an_extractor_escalates_to_its_frontier_and_reports_who_decided():
    ex = Extractor("category, priority int", local=ScriptedBackend(['{"category":"a"}'], cycle=True),
                   frontier=ScriptedBackend(['{"category":"billing","priority":1}']))
    out = ex.run("charged twice")
    assert (out.decided_by, out.verdict, out.escalated) == ("cascade", "invalid", True)
    assert out.result.output.category == "billing"
    assert asyncio.run(Extractor(Ticket, local=ScriptedBackend(['{"category":"b","priority":3}'])).acall("x")
                       ).priority == 3


@pytest.mark.slow
def test_the_default_local_model_extracts_in_one_call():
    ticket = openfirst.extract("category, priority int", "I was charged twice for my March invoice, please refund.")
    assert isinstance(ticket.category, str) and isinstance(ticket.priority, int)
    outcome = openfirst.Extractor(Ticket, instructions="Classify the support ticket.").run("The app crashes.")
    assert outcome.confidence is not None and set(outcome.confidence.fields) == {"category", "priority"}


def test_an_extractor_runs_inside_a_running_event_loop_too():
    """A notebook has a running loop: `run` must not call asyncio.run on it."""
    ex = Extractor("category, priority int", local=ScriptedBackend(['{"category":"a","priority":1}'], cycle=True))

    async def in_a_notebook():
        return ex("charged twice"), await ex.acall("again")

    first, second = asyncio.run(in_a_notebook())
    assert first.priority == second.priority == 1
