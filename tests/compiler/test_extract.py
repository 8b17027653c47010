"""`openfirst extract`: resumable batch extraction, typed errors inline."""

import json

import pytest

from openfirst.cli import main


@pytest.mark.slow
def test_extract_cli_is_resumable(tiny_model_dir, tmp_path, capsys):
    task_file = tmp_path / "task.py"
    task_file.write_text(
        "from pydantic import BaseModel, Field\n\n"
        "class T(BaseModel):\n    '''Classify.'''\n    label: str = Field(max_length=8)\n    score: int = Field(ge=0, le=9)\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "body": "a"}\n{"id": 2, "body": "b"}\n{"id": 3}\nnot json\n')
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "output": {"label": "done", "score": 1}}\n{"id": 2, "outp')  # torn line from a crash
    argv = ["extract", "--task", f"{task_file}:T", "--input", str(inp), "--output", str(out), "--model",
            str(tiny_model_dir), "--text-field", "body", "--max-tokens", "60", "--no-progress", "--temperature", "1"]
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["skipped_done"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {x["id"]: x for x in lines}
    assert [x["id"] for x in lines] == [1, 2, 3, "line-4"]
    assert by_id[1]["output"] == {"label": "done", "score": 1}  # untouched
    assert "error" not in by_id[2] and set(by_id[2]["output"]) == {"label", "score"}  # constrained: valid
    assert len(by_id[2]["output"]["label"]) <= 8 and 0 <= by_id[2]["output"]["score"] <= 9
    assert by_id[2]["model"] == str(tiny_model_dir) and "usage" in by_id[2]
    assert by_id[3]["error"]["type"] == "InputError" and "body" in by_id[3]["error"]["message"]
    assert main(argv) == 0  # nothing left to do
    assert json.loads(capsys.readouterr().out)["skipped_done"] == 4
