"""Batch extraction over JSONL: resumable, one output line per input, typed errors recorded inline."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from openfirst.compiler.errors import EngineCrashed, TaskSpecError
from openfirst.compiler.program import Failure, Program
from openfirst.compiler.task import output_json


def read_inputs(path: Path, text_field: str = "text") -> Iterator[tuple[int, Any, str | None, str | None]]:
    """(line number, id, text or None, error or None) per record of a JSONL (or CSV) input."""
    from openfirst.core.rows import iter_raw_rows

    for lineno, obj, error in iter_raw_rows(path):
        if error is not None:
            yield lineno, f"line-{lineno}", None, error
            continue
        rid = obj.get("id", f"line-{lineno}")
        text = obj.get(text_field)
        if not isinstance(text, str) or not text.strip():
            yield lineno, rid, None, f"missing or empty text field {text_field!r}"
            continue
        yield lineno, rid, text, None


def scan_output(path: Path, drop_errors: bool = False) -> tuple[set[str], int, int]:
    """One pass over an existing output: (ids present, error lines kept, error lines dropped). With `drop_errors`
    the error lines are removed (an atomic rewrite) so those ids run again. Bytes decode with replacement."""
    ids: set[str] = set()
    kept_errors = dropped = 0
    if not path.exists():
        return ids, kept_errors, dropped
    kept: list[bytes] = []
    with open(path, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line.decode("utf-8", errors="replace"))
                key, is_error = id_key(rec["id"]), "error" in rec
            except (json.JSONDecodeError, KeyError, TypeError):
                kept.append(line)
                continue
            if is_error and drop_errors:
                dropped += 1
                continue
            kept.append(line)
            ids.add(key)
            kept_errors += is_error
    if dropped:
        tmp = path.with_name(path.name + ".retry.tmp")
        tmp.write_bytes(b"".join(kept))
        tmp.replace(path)
    return ids, kept_errors, dropped


def id_key(rid: Any) -> str:
    """One id's identity in the output: its JSON text (1 and "1" are different ids)."""
    return json.dumps(rid, sort_keys=True)


def check_ids(rows: list[tuple[int, Any, str | None, str | None]]) -> None:
    """Refuse repeated ids, and ids that differ only in type (1 and "1"), with their line numbers."""
    lines: dict[str, list[int]] = {}
    by_key: dict[str, set[str]] = {}
    for lineno, rid, _, _ in rows:
        lines.setdefault(str(rid), []).append(lineno)
        by_key.setdefault(str(rid), set()).add(id_key(rid))
    problems = [f"id {name!r} at lines {', '.join(map(str, at))}"
                + (" (written as different JSON types)" if len(by_key[name]) > 1 else "")
                for name, at in lines.items() if len(at) > 1]
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise TaskSpecError(f"the input has repeated or ambiguous ids: {shown}",
                            hint="give every record a unique id; results are matched to inputs by id")


def default_batch_size(backend: str) -> int:
    """Records per engine call: vLLM batches (32); llama.cpp and transformers decode one record at a time
    here, so a record is written, counted on the progress bar and timed (`latency_s`) as soon as it is done."""
    return 32 if backend == "vllm" else 1


def run_extraction(program: Program | Any, input_path: Path, output_path: Path, text_field: str = "text",
                   batch_size: int = 8, show_progress: bool = True, retry_errors: bool = False) -> dict[str, Any]:
    """Extract every input not yet in the output, appending one JSON line per input. Resumable: a crash's torn
    tail is repaired and finished ids are skipped; `retry_errors` first removes the error lines so those ids run
    again (still one line per id). Records whose engine crashed under them (EngineCrashed: an isolated engine
    restarts) run once more. One run at a time per output file (an exclusive lock). Counts: ok, error (this run),
    errors_by_type, skipped_done, errors_kept (earlier error lines left in place), rerun_after_engine_crash.
    `program`: a Program (run as a one-model pipeline) or a Pipeline with one task named "task"."""
    from openfirst.pipeline.pipeline import Pipeline

    pipeline = program if isinstance(program, Pipeline) else Pipeline.single(program)
    if not input_path.exists():
        raise TaskSpecError(f"input file {input_path} does not exist")
    rows = list(read_inputs(input_path, text_field))
    check_ids(rows)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(output_path):
        repair_tail(output_path)
        seen, kept_errors, retried = scan_output(output_path, drop_errors=retry_errors)
        todo = [row for row in rows if id_key(row[1]) not in seen]
        by_type: dict[str, int] = {}
        counts: dict[str, Any] = {"skipped_done": len(rows) - len(todo), "ok": 0, "error": 0,
                                  "errors_by_type": by_type, "errors_kept": kept_errors, "retried": retried,
                                  "rerun_after_engine_crash": 0}
        with open(output_path, "a", encoding="utf-8") as out, \
                tqdm(total=len(todo), desc="extract", unit="doc", disable=not show_progress) as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                runnable = [i for i, r in enumerate(batch) if r[2] is not None]
                results = dict(zip(runnable, pipeline.run_texts("task", [batch[i][2] for i in runnable]))) \
                    if runnable else {}
                crashed = [i for i, r in results.items() if isinstance(getattr(r, "error", None), EngineCrashed)]
                if crashed:  # the engine died under this batch and has restarted: its records run once more
                    counts["rerun_after_engine_crash"] += len(crashed)
                    results.update(zip(crashed, pipeline.run_texts("task", [batch[i][2] for i in crashed])))
                for i, (lineno, rid, text, error) in enumerate(batch):
                    rec = _record(rid, results.get(i), error, lineno, len(runnable))
                    counts["ok" if "output" in rec else "error"] += 1
                    if "error" in rec:
                        by_type[rec["error"]["type"]] = by_type.get(rec["error"]["type"], 0) + 1
                    out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                out.flush()
                bar.update(len(batch))
    return counts


@contextlib.contextmanager
def exclusive(output_path: Path) -> Iterator[None]:
    """An exclusive lock on `output_path` (a sibling `.lock` file): a second run stops with a clear error."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(output_path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise TaskSpecError(f"another `openfirst extract` is writing to {output_path}",
                            hint="wait for it to finish, or write to another file") from None
    try:
        yield
    finally:
        lock.release()


def _record(rid: Any, result, input_error: str | None, lineno: int, batch: int = 1) -> dict[str, Any]:
    """One output line. `latency_s` is this record's own time when it ran alone; in a batch the engine decodes
    every record at once, so the line says `batch_latency_s` and `batch_size` instead of inventing a share."""
    if input_error is not None:
        return {"id": rid, "error": {"type": "InputError", "message": f"line {lineno}: {input_error}"}}
    timing = {"latency_s": round(result.latency_s, 4)} if batch == 1 else \
        {"batch_latency_s": round(result.latency_s, 4), "batch_size": batch}
    base = {"id": rid, "backend": result.backend, "model": result.model, "attempts": result.attempts, **timing,
            "usage": result.usage}
    if isinstance(result, Failure):
        return {**base, "error": {"type": type(result.error).__name__, "message": result.error.message}}
    output = output_json(result.output)
    return {**base, "output": output}


def repair_tail(path: Path) -> None:
    """A crash can leave a last line without its newline. A complete record there is kept (its newline added);
    a torn one (not valid JSON, or cut inside a multi-byte character) is dropped, so appends stay line-aligned."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    head, _, last = data.rpartition(b"\n")
    try:
        complete = isinstance(json.loads(last.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        complete = False
    with open(path, "r+b") as fh:
        if complete:
            fh.seek(0, 2)
            fh.write(b"\n")
        else:
            fh.truncate(len(head) + 1 if head or data.startswith(b"\n") else 0)
