"""Batch extraction over JSONL: resumable, one output line per input, typed errors recorded inline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from openfirst.compiler.errors import TaskSpecError
from openfirst.compiler.program import Failure, Program


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


def done_ids(path: Path) -> set[str]:
    """Ids already present in an output file (a torn last line from a crash is ignored)."""
    ids: set[str] = set()
    if not path.exists():
        return ids
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(json.dumps(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return ids


def run_extraction(program: Program, input_path: Path, output_path: Path, text_field: str = "text",
                   batch_size: int = 8, show_progress: bool = True) -> dict[str, int]:
    if not input_path.exists():
        raise TaskSpecError(f"input file {input_path} does not exist")
    seen = done_ids(output_path)
    todo = [row for row in read_inputs(input_path, text_field) if json.dumps(row[1]) not in seen]
    counts = {"skipped_done": len(seen), "ok": 0, "error": 0}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    _repair_tail(output_path)
    with open(output_path, "a", encoding="utf-8") as out, \
            tqdm(total=len(todo), desc="extract", unit="doc", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            runnable = [r for r in batch if r[2] is not None]
            results = dict(zip((r[1] if isinstance(r[1], str) else json.dumps(r[1]) for r in runnable),
                               program.run_many([r[2] for r in runnable]))) if runnable else {}
            for lineno, rid, text, error in batch:
                key = rid if isinstance(rid, str) else json.dumps(rid)
                rec = _record(rid, results.get(key), error, lineno)
                counts["ok" if "output" in rec else "error"] += 1
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(len(batch))
    return counts


def _record(rid: Any, result, input_error: str | None, lineno: int) -> dict[str, Any]:
    if input_error is not None:
        return {"id": rid, "error": {"type": "InputError", "message": f"line {lineno}: {input_error}"}}
    base = {"id": rid, "backend": result.backend, "model": result.model, "attempts": result.attempts,
            "latency_s": round(result.latency_s, 4), "usage": result.usage}
    if isinstance(result, Failure):
        return {**base, "error": {"type": type(result.error).__name__, "message": result.error.message}}
    output = result.output.model_dump(mode="json") if hasattr(result.output, "model_dump") else result.output
    return {**base, "output": output}


def _repair_tail(path: Path) -> None:
    """Drop a torn final line (no newline) left by a crash, so appends stay line-aligned."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
