"""Small-model guards (issue 14, item 4): schema words and example values must not come back as answers.

The reported failures: a job-posting task answered `"skills": ["items", "type", "array", "string", ...]`, and a
few-shot example was copied word for word into an unrelated support ticket. Both came back as valid outputs.
"""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import LeakedValue
from openfirst.compiler.guards import find_leaks, outline
from openfirst.compiler.program import UNGUARDED, Failure, Program, ProgramOptions, Result
from openfirst.compiler.task import compile_task


class JobPosting(BaseModel):
    """Extract the job title and the skills the posting asks for."""

    title: str = Field(max_length=80)
    skills: list[str] = Field(max_length=20, description="skills named in the posting")
    level: Literal["junior", "senior", "string"] = "junior"


class Ticket(BaseModel):
    """Summarise the ticket."""

    category: Literal["billing", "shipping"]
    summary: str = Field(max_length=160)


EXAMPLE = ("I was charged twice for my March invoice, please refund one of the payments.",
           {"category": "billing", "summary": "Customer was double-charged for the March invoice."})
POSTING = "We are hiring a data engineer who knows Python and SQL."
GUARDED = ProgramOptions()  # the guards are the defaults
OFF = ProgramOptions(**UNGUARDED)


def test_the_reported_schema_word_answer_is_rejected_not_returned():
    leaked = json.dumps({"title": "JobPosting", "skills": ["items", "type", "array", "string"]})
    backend = ScriptedBackend([leaked], cycle=True)
    out = Program(compile_task(JobPosting), backend, GUARDED).run_many([POSTING])[0]
    assert isinstance(out, Failure) and isinstance(out.error, LeakedValue)
    assert out.error.attempts == 3 and "'items' is a word of the schema" in out.error.message
    # without the guard the same reply came back as a valid answer (the reported behaviour)
    unguarded = Program(compile_task(JobPosting), ScriptedBackend([leaked]), OFF)
    assert isinstance(unguarded.run_many([POSTING])[0], Result)


def test_a_schema_leak_is_retried_with_the_reason_as_feedback():
    good = json.dumps({"title": "Data engineer", "skills": ["Python", "SQL"]})
    backend = ScriptedBackend([json.dumps({"title": "title", "skills": ["Python"]}), good])
    out = Program(compile_task(JobPosting), backend, GUARDED).run_many([POSTING])[0]
    assert isinstance(out, Result) and out.attempts == 2 and out.output.skills == ["Python", "SQL"]
    assert "is a word of the schema" in backend.seen[1][-1]["content"]


@pytest.mark.parametrize("examples_in_prompt", ["turns", "marked"])
def test_the_reported_example_copy_retries_without_the_examples(examples_in_prompt):
    task = compile_task(Ticket, examples=[EXAMPLE])
    copy = json.dumps(EXAMPLE[1])
    good = json.dumps({"category": "shipping", "summary": "The parcel for order 55123 is late."})
    backend = ScriptedBackend([copy, good])
    options = ProgramOptions(examples_in_prompt=examples_in_prompt)
    out = Program(task, backend, options).run_many(["My parcel is late. Order 55123."])[0]
    assert isinstance(out, Result) and out.output.category == "shipping" and out.attempts == 2
    first, retry = (json.dumps(c) for c in backend.seen)
    assert "March invoice" in first and "March invoice" not in retry  # no example, and the copy is not fed back
    unguarded = Program(task, ScriptedBackend([copy]), OFF).run_many(["My parcel is late."])[0]
    assert isinstance(unguarded, Result)  # before: the copy was a valid answer


def test_values_the_input_holds_are_not_leaks():
    schema = JobPosting.model_json_schema()
    text = "Senior role: the type of work is string theory; skills: items handling, array design."
    assert find_leaks({"title": "type", "skills": ["items", "array"], "level": "string"}, text, schema) == []
    assert find_leaks({"title": "x", "skills": [], "level": "string"}, "nothing", schema) == []  # an enum value
    ex = [EXAMPLE[1]]
    source = "Customer was double-charged for the March invoice again!"
    assert find_leaks({"category": "billing", "summary": "Customer was double-charged for the March invoice."},
                      source, Ticket.model_json_schema(), ex) == []


def test_leaks_name_the_field_and_the_kind():
    leaks = find_leaks({"title": "JobPosting", "skills": ["Python", "properties"]}, POSTING,
                       JobPosting.model_json_schema())
    assert [(leak.kind, leak.pointer) for leak in leaks] == [("schema", "/title"), ("schema", "/skills/1")]
    leaks = find_leaks({"category": "shipping", "summary": "Late parcel; customer was double-charged for the March "
                        "invoice."}, "parcel late", Ticket.model_json_schema(), [EXAMPLE[1]])
    assert [(leak.kind, leak.pointer) for leak in leaks] == [("example", "/summary")]


def test_a_field_description_as_the_value_is_a_leak():
    """Seen in benchmarks/results/small-model-guards.json: a summary answered "one sentence, at most 20 characters"."""
    schema = {"type": "object", "properties": {"summary": {"type": "string",
                                                           "description": "one sentence, at most 160 characters"}}}
    leaks = find_leaks({"summary": "one sentence, at most 20 characters"}, "Change my email address", schema)
    assert [(leak.kind, leak.pointer) for leak in leaks] == [("schema", "/summary")]
    assert find_leaks({"summary": "Customer wants the email changed."}, "Change my email address", schema) == []


def test_the_outline_shows_no_schema_keywords():
    text = outline(JobPosting.model_json_schema())
    json_words = {'"type"', '"items"', '"properties"', "$defs", "anyOf", "JobPosting", "maxItems"}
    assert not [w for w in json_words if w in text]
    assert '"junior" | "senior"' in text and "at most 20 items" in text and "skills named in the posting" in text
    assert "optional" in text.splitlines()[3]  # level has a default


@pytest.mark.parametrize("examples_in_prompt", ["marked", "turns"])
def test_examples_are_marked_or_turns(examples_in_prompt):
    task = compile_task(Ticket, examples=[EXAMPLE])
    msgs = task.messages("late parcel", schema_as="outline", examples_as=examples_in_prompt)
    if examples_in_prompt == "marked":
        assert len(msgs) == 2 and "Example of the format only" in msgs[0]["content"]
        assert "never copy its values" in msgs[0]["content"]
    else:
        assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
