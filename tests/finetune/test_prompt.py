"""The prompt a tuned model is trained on and served with, and its target text."""

from pydantic import BaseModel

from openfirst.compiler.task import compile_task
from openfirst.finetune.prompt import TunedPrompt, target_text


class Ticket(BaseModel):
    """Route the ticket."""

    category: str
    priority: int


def test_the_tuned_prompt_drops_examples_unless_kept_and_round_trips_through_the_card():
    task = compile_task(Ticket, examples=[("refund me", {"category": "billing", "priority": 3})])
    plain = TunedPrompt(schema_in_prompt="none").messages(task, "my parcel is late")
    assert [m["role"] for m in plain] == ["system", "user"] and plain[-1]["content"] == "my parcel is late"
    kept = TunedPrompt(examples=True).messages(task, "x")
    assert [m["role"] for m in kept] == ["system", "user", "assistant", "user"]
    assert TunedPrompt.from_dict(TunedPrompt("none", True).to_dict()) == TunedPrompt("none", True)
    assert TunedPrompt.from_dict({"examples": True, "unknown": 1}) == TunedPrompt(examples=True)


def test_the_target_is_compact_json_as_the_grammar_writes_it():
    assert target_text({"category": "café", "priority": 2}) == '{"category":"café","priority":2}'
