"""Tasks: a Pydantic model (or a module:Class spec) compiled with its instructions, descriptions and examples;
bad specs refused with a clear error; the prompt a program sends."""

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.task import compile_task, load_task, load_task_class


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


def test_the_prompt_a_program_sends_follows_its_options():
    """Program.messages renders with the program's options (the outline by default), which is what a frontier
    budget prices; CompiledTask.messages alone describes the output with the raw JSON Schema."""
    from openfirst.compiler.backends.fake import ScriptedBackend
    from openfirst.compiler.program import Program, ProgramOptions

    task = compile_task(Ticket, examples=[("refund me", {"category": "billing", "priority": 3})])
    program = Program(task, ScriptedBackend([]))
    assert program.messages("x") == task.messages("x", (), "outline", "turns")
    assert program.messages("x", examples=False) == task.messages("x", (), "outline", None)
    raw = Program(task, ScriptedBackend([]), ProgramOptions(schema_in_prompt="json-schema"))
    assert raw.messages("x") == task.messages("x") and raw.messages("x") != program.messages("x")

