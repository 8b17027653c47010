"""Held-out evaluation: outputs compared with their labels field by field."""

from pydantic import BaseModel

from openfirst.compiler.task import compile_task
from openfirst.finetune.evaluate import field_matches, score_held_out
from openfirst.finetune.examples import TrainingExample


class Ticket(BaseModel):
    """Route the ticket."""

    category: str
    priority: int | None = None


def test_scores_count_valid_exact_and_right_fields():
    task = compile_task(Ticket)
    examples = [TrainingExample("t", "a", {"category": "billing", "priority": 2}),
                TrainingExample("t", "b", {"category": "shipping", "priority": None}),
                TrainingExample("t", "c", {"category": "other", "priority": 1})]
    answers = {"a": Ticket(category="billing", priority=2), "b": Ticket(category="billing"), "c": None}
    score = score_held_out(examples, {"t": task}, lambda t, text: answers[text]).to_dict()
    assert score == {"examples": 3, "valid_share": 2 / 3, "exact_share": 1 / 3, "field_accuracy": 3 / 6}
    assert field_matches(task, None, {"category": "x"}) == (1, 2)  # both absent counts as right
