"""Output types from short specs: schema strings, Pydantic models without docstrings, JSON Schemas."""

import pytest
from pydantic import BaseModel

from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.schema_spec import as_task, model_from_spec


class Ticket(BaseModel):
    category: str
    priority: int


def test_schema_strings_become_models():
    m = model_from_spec("name, age int, tags list[str], ok bool")
    assert m(name="a", age=3, tags=["x"], ok=True).age == 3
    assert set(m.model_json_schema()["required"]) == {"name", "age", "tags", "ok"}
    for bad in ("", "age integer", "1name", "tags list[dict]"):
        with pytest.raises(TaskSpecError):
            model_from_spec(bad)


def test_a_model_without_a_docstring_gets_default_instructions_and_a_json_schema_works_too():
    assert "Ticket" in as_task(Ticket).instructions  # reported: a task without a docstring was refused
    assert as_task(Ticket, instructions="Classify.").instructions == "Classify."
    assert as_task({"type": "object", "properties": {"a": {"type": "integer"}}}).model is None
