import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.errors import SchemaRefused, TaskSpecError
from openfirst.compiler.schema import SchemaOptions, normalise
from openfirst.compiler.task import compile_task, load_task, load_task_class


def test_report_lists_enforced_bounded_and_recursion():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                       "child": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "required": ["name"],
        "description": "annotations are not enforced",
    }
    norm, report = normalise(schema, SchemaOptions(max_string_length=50, max_items=7))
    enforced = {k for k, _ in report.enforced}
    assert {"type", "properties", "required", "items", "$ref"} <= enforced
    assert "description" not in enforced
    assert ("maxLength", "/properties/name", 50) in report.bounded
    assert ("maxItems", "/properties/tags", 7) in report.bounded
    assert ("maxLength", "/properties/tags/items", 50) in report.bounded
    assert norm["properties"]["name"]["maxLength"] == 50 and "maxLength" not in schema["properties"]["name"]
    assert report.recursive_refs == ["/$defs/Node"]
    assert report.exact


@pytest.mark.parametrize("schema,keyword", [({}, "{}"), (True, "{}"), (False, "false"), ([], "type")])
def test_unbounded_or_broken_schemas_are_refused_with_keyword_and_pointer(schema, keyword):
    with pytest.raises(SchemaRefused) as err:
        normalise(schema)
    assert err.value.keyword == keyword and err.value.pointer == ""


def test_faithful_mode_adds_no_bounds():
    norm, report = normalise({"type": "string"}, SchemaOptions.faithful())
    assert norm == {"type": "string"} and not report.bounded


class Ticket(BaseModel):
    """Route the ticket."""

    category: str = Field(max_length=20, description="which team")
    priority: int = Field(ge=1, le=5)


def test_compile_task_uses_docstring_and_descriptions():
    task = compile_task(Ticket, examples=[("refund me", {"category": "billing", "priority": 3})])
    assert task.instructions == "Route the ticket."
    assert task.field_descriptions == {"category": "which team"}
    assert task.examples[0].output.priority == 3
    assert "which team" in task.system_prompt()


def test_bad_task_specs_are_refused_clearly(tmp_path):
    class NoDoc(BaseModel):
        x: int

    with pytest.raises(TaskSpecError, match="no instructions"):
        compile_task(NoDoc)
    with pytest.raises(TaskSpecError, match="BaseModel subclass"):
        compile_task(dict)  # type: ignore[arg-type]
    with pytest.raises(TaskSpecError, match="example 0"):
        compile_task(Ticket, examples=[("x", {"category": "a", "priority": 9})])
    with pytest.raises(TaskSpecError, match="module:Class"):
        load_task_class("no_colon_here")
    with pytest.raises(TaskSpecError, match="does not exist"):
        load_task_class(str(tmp_path / "missing.py") + ":X")
    with pytest.raises(TaskSpecError, match="cannot import"):
        load_task_class("no_such_module_xyz:X")
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskSpecError, match="boom"):
        load_task_class(f"{bad}:X")


def test_example_tasks_compile():
    for spec in ("datasets/tasks/support_ticket.py:SupportTicket", "datasets/tasks/invoice.py:Invoice",
                 "datasets/tasks/meeting_notes.py:MeetingNotes"):
        task = load_task(spec)
        assert task.instructions and task.schema["type"] == "object"


def test_open_objects_are_closed_in_task_mode_only():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    norm, report = normalise(schema)
    assert norm["additionalProperties"] is False and ("additionalProperties", "", False) in report.bounded
    assert "additionalProperties" not in normalise(schema, SchemaOptions.faithful())[0]
