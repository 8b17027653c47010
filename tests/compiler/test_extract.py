"""`openfirst extract`: resumable batch extraction, typed errors inline."""

import json
import random
import subprocess
import sys
import time

import pytest

from openfirst.cli import main
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.extract import exclusive, run_extraction
from openfirst.compiler.program import Program, ProgramOptions
from openfirst.compiler.task import compile_json_schema


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
    argv = ["extract", "--backend", "transformers", "--task", f"{task_file}:T", "--input", str(inp), "--output",
            str(out), "--model",
            str(tiny_model_dir), "--text-field", "body", "--max-tokens", "60", "--no-progress", "--temperature", "1"]
    assert main(argv) == 1  # two records failed (no text, not JSON): the exit status says so
    captured = capsys.readouterr()
    counts = json.loads(captured.out)
    assert counts["skipped_done"] == 1 and counts["errors_by_type"] == {"InputError": 2}
    assert "2 of 3 records failed (InputError 2)" in captured.err and "--retry-errors" in captured.err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {x["id"]: x for x in lines}
    assert [x["id"] for x in lines] == [1, 2, 3, "line-4"]
    assert by_id[1]["output"] == {"label": "done", "score": 1}  # untouched
    assert "error" not in by_id[2] and set(by_id[2]["output"]) == {"label", "score"}  # constrained: valid
    assert len(by_id[2]["output"]["label"]) <= 8 and 0 <= by_id[2]["output"]["score"] <= 9
    assert by_id[2]["model"] == str(tiny_model_dir) and "usage" in by_id[2]
    assert by_id[3]["error"]["type"] == "InputError" and "body" in by_id[3]["error"]["message"]
    assert main(argv) == 0  # nothing left to do; the earlier errors are pointed out
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped_done"] == 4 and "2 records failed in an earlier run" in captured.err


# -- resume safety, on a scripted FAKE backend (fast) ---------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "note": {"type": "string"}}, "required": ["n"]}


def scripted_program():
    task = compile_json_schema(SCHEMA, "Count.")
    return Program(task, ScriptedBackend(['{"n":1,"note":"é😀"}'], cycle=True), ProgramOptions(max_retries=0))


def write_inputs(path, n):
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": f"text {i}"}) + "\n" for i in range(n)))


def ids_once(path, n):
    lines = path.read_bytes().decode("utf-8").splitlines()
    ids = [json.loads(x)["id"] for x in lines]
    return sorted(ids) == sorted(f"r{i}" for i in range(n))


def test_a_crash_at_any_byte_then_a_rerun_gives_every_id_exactly_once(tmp_path):
    write_inputs(tmp_path / "in.jsonl", 12)
    full = tmp_path / "full.jsonl"
    run_extraction(scripted_program(), tmp_path / "in.jsonl", full, show_progress=False)
    data = full.read_bytes()
    rng = random.Random(0)
    for cut in sorted(rng.sample(range(len(data)), 40)) + [len(data) - 1]:  # mid-line, mid-character, before \n
        out = tmp_path / f"out-{cut}.jsonl"
        out.write_bytes(data[:cut])
        run_extraction(scripted_program(), tmp_path / "in.jsonl", out, show_progress=False)
        assert ids_once(out, 12), cut


def test_a_second_run_on_the_same_output_stops_with_a_clear_error(tmp_path):
    write_inputs(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    with exclusive(out):  # another run holds the output
        with pytest.raises(TaskSpecError, match="another `openfirst extract` is writing"):
            run_extraction(scripted_program(), tmp_path / "in.jsonl", out, show_progress=False)
    assert not out.exists() or out.read_text() == ""


def test_repeated_or_ambiguous_ids_are_refused_with_line_numbers(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n{"id": "x", "text": "c"}\n'
                                       '{"id": "x", "text": "d"}\n')
    with pytest.raises(TaskSpecError) as err:
        run_extraction(scripted_program(), tmp_path / "in.jsonl", tmp_path / "out.jsonl", show_progress=False)
    assert "'1' at lines 1, 2 (written as different JSON types)" in err.value.message
    assert "'x' at lines 3, 4" in err.value.message and not (tmp_path / "out.jsonl").exists()


KILLABLE = """
import sys
from pathlib import Path
from openfirst.compiler.backends.fake import ScriptedBackend
from openfirst.compiler.extract import run_extraction
from openfirst.compiler.program import Program, ProgramOptions
from openfirst.compiler.task import compile_json_schema

task = compile_json_schema({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}, "n")
backend = ScriptedBackend(['{"n":1}'], cycle=True)
slow = backend.generate
backend.generate = lambda *a, **k: (__import__("time").sleep(0.01), slow(*a, **k))[1]
run_extraction(Program(task, backend, ProgramOptions(max_retries=0)), Path(sys.argv[1]), Path(sys.argv[2]),
               batch_size=1, show_progress=False)
"""


@pytest.mark.slow
def test_killed_at_random_points_and_rerun_concurrently(tmp_path):
    """Real processes killed with SIGKILL mid-run, reruns started two at a time: every id exactly once."""
    write_inputs(tmp_path / "in.jsonl", 150)
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, "-c", KILLABLE, str(tmp_path / "in.jsonl"), str(out)]
    rng = random.Random(1)
    for _ in range(4):
        proc = subprocess.Popen(argv)
        time.sleep(rng.uniform(1.5, 3.0))
        proc.kill()
        proc.wait()
    pair = [subprocess.Popen(argv, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(), p.stderr.read().decode()) for p in pair]
    assert sorted(code for code, _ in results)[0] == 0  # one finished; the other stopped at the lock or found nothing
    assert all(code == 0 or "another `openfirst extract`" in err for code, err in results)
    subprocess.run(argv, check=True)
    assert ids_once(out, 150)


def test_a_run_that_failed_everywhere_can_be_retried_after_the_fix(tmp_path):
    """Reported: with a wrong --text-field every record failed, exit 0, and the rerun skipped them all as done."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"id": "a", "body": "x"}\n{"id": "b", "body": "y"}\n')
    first = run_extraction(scripted_program(), inp, out, text_field="text", show_progress=False)
    assert (first["ok"], first["error"], first["errors_by_type"]) == (0, 2, {"InputError": 2})
    again = run_extraction(scripted_program(), inp, out, text_field="body", show_progress=False)
    assert again["skipped_done"] == 2 and again["errors_kept"] == 2  # without --retry-errors: left, but said
    fixed = run_extraction(scripted_program(), inp, out, text_field="body", show_progress=False, retry_errors=True)
    assert (fixed["retried"], fixed["ok"], fixed["error"]) == (2, 2, 0)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["id"] for x in lines) == ["a", "b"] and all("output" in x for x in lines)


def test_latency_is_per_record_only_when_the_record_ran_alone(tmp_path):
    """Reported: every record carried its whole batch's latency_s."""
    inp = tmp_path / "in.jsonl"
    write_inputs(inp, 3)
    run_extraction(scripted_program(), inp, tmp_path / "one.jsonl", batch_size=1, show_progress=False)
    run_extraction(scripted_program(), inp, tmp_path / "many.jsonl", batch_size=3, show_progress=False)
    alone = [json.loads(x) for x in (tmp_path / "one.jsonl").read_text().splitlines()]
    batched = [json.loads(x) for x in (tmp_path / "many.jsonl").read_text().splitlines()]
    assert all("latency_s" in r and "batch_latency_s" not in r for r in alone)
    assert all("latency_s" not in r and r["batch_size"] == 3 for r in batched)


def test_progress_and_output_move_per_record(tmp_path, capsys):
    """Reported: the bar moved per batch of 8 (a 2-record run sat at 0/2 for 28 minutes), nothing was written
    until the batch ended. Now: one record per engine call on in-process engines, written and counted at once."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_inputs(inp, 2)
    written_before_call = []

    class WatchingBackend(ScriptedBackend):  # FAKE: scripted replies; notes what was written before each call
        def generate(self, conversations, *args, **kwargs):
            written_before_call.append(len(out.read_text().splitlines()) if out.exists() else 0)
            return super().generate(conversations, *args, **kwargs)

    task = compile_json_schema({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
                               "Count.")
    program = Program(task, WatchingBackend(['{"n": 1}'], cycle=True), ProgramOptions(max_retries=0))
    from openfirst.compiler.extract import default_batch_size

    assert default_batch_size("llama.cpp") == default_batch_size("transformers") == 1
    assert default_batch_size("vllm") == 32
    run_extraction(program, inp, out, batch_size=default_batch_size("llama.cpp"), show_progress=True)
    assert written_before_call == [0, 1]
    assert "2/2" in capsys.readouterr().err


@pytest.mark.slow
def test_an_engine_crash_mid_run_loses_nothing(tmp_path):
    """The engine (llama.cpp, isolated as `extract --input` runs it) is killed with SIGSEGV under a batch: the
    engine restarts, that batch runs once more, and every record ends with its answer, once."""
    import os
    import signal
    import threading

    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    from openfirst.compiler.schema_spec import as_task
    from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend

    people = [("Ada Lovelace", 36), ("Alan Turing", 41), ("Grace Hopper", 85), ("Edsger Dijkstra", 72)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": f"{n} was {a}."}) + "\n" for i, (n, a) in enumerate(people)))
    backend = IsolatedBackend(EngineSpec("llama.cpp", options={"n_threads": 2}))
    try:
        victim = backend.pid

        def kill_under_a_batch():
            while not backend.busy:
                time.sleep(0.002)
            os.kill(victim, signal.SIGSEGV)

        killer = threading.Thread(target=kill_under_a_batch)
        killer.start()
        program = Program(as_task("name, age int"), backend, ProgramOptions(max_tokens=48, max_retries=1))
        counts = run_extraction(program, inp, tmp_path / "out.jsonl", batch_size=2, show_progress=False)
        killer.join(5)
    finally:
        backend.close()
    assert counts["rerun_after_engine_crash"] == 2 and backend.crashes == 1 and backend.restarts == 1
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == [0, 1, 2, 3]
    assert counts["ok"] == 4, lines
