"""The decision log's writer and reader: the service appends one JSON object per routed input to a JSONL file
(`DecisionLog`, records rendered from `RoutedOutcome.record` by `DecisionRenderer`; with `[state] database_url`,
to the shared database too); `read_decisions` reads it back with its rotated files, or from the database. Joining it with outcome labels is offline evaluation: `openfirst.service.decision_eval`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from openfirst.core.errors import ConfigError, LogFormatError
from openfirst.core.rows import iter_raw_rows

# keys of one decision record; scripts read them, keep them stable
RECORD_KEYS = ("id", "time", "endpoint", "task", "query", "query_sha256", "target", "decided_by", "p_success",
               "score", "threshold", "expected_frontier_share", "pin_reasons", "model", "ok", "error", "latency_s",
               "cost_usd", "query_hmac", "query_truncated", "caller", "confidence", "output", "stages",
               "predictions")


def query_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class DecisionRenderer:
    """A decision record as it may be stored, by the privacy rules of `[log]`: the text of a request pinned by the
    privacy rules is never kept, nor its output (the validated answer is kept beside the text it came from, for
    `openfirst finetune --from-decisions`, and under the same rule); with `store_text=False` no text is kept, and
    the query is identified by an HMAC-SHA256 under `hash_key` (an unkeyed SHA-256 of a short query can be
    brute-forced), or not at all without a key. A stored query is cut at `max_query_chars`. The JSONL log and the
    shared database store the same rendering."""

    def __init__(self, store_text: bool = True, *, hash_key: str | None = None, max_query_chars: int = 10_000):
        self.store_text = store_text
        self.hash_key = hash_key.encode() if hash_key else None
        self.max_query_chars = max_query_chars

    def render(self, rec: dict[str, Any]) -> dict[str, Any]:
        rec = dict(rec)
        query = rec.get("query")
        output = rec.get("output")
        rec["query"] = rec["query_sha256"] = rec["output"] = None
        if isinstance(query, str):
            pinned = rec.get("decided_by") == "privacy" or bool(rec.get("pin_reasons"))
            if self.store_text and not pinned:
                rec["query"] = query[: self.max_query_chars]
                rec["query_truncated"] = len(query) > self.max_query_chars
                rec["query_sha256"] = query_digest(query)
                rec["output"] = output  # the validated answer, with its text only: never for a pinned request
            elif self.hash_key is not None:
                rec["query_hmac"] = hmac.new(self.hash_key, query.encode("utf-8", "surrogatepass"),
                                             hashlib.sha256).hexdigest()
        return {k: rec.get(k) for k in RECORD_KEYS}


class DecisionLog(DecisionRenderer):
    """Append-only JSONL writer of rendered records (`DecisionRenderer`), safe across threads; each record is
    flushed as it is written. Private by default: the file is created with mode 0600. Past `max_bytes` the file
    rotates (`.1` ... `.{backups}`)."""

    def __init__(self, path: Path | str, store_text: bool = True, *, hash_key: str | None = None,
                 max_query_chars: int = 10_000, max_bytes: int = 100_000_000, backups: int = 5):
        super().__init__(store_text, hash_key=hash_key, max_query_chars=max_query_chars)
        self.path = Path(path)
        self.max_bytes, self.backups = max_bytes, backups
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the decision log's folder {self.path.parent}: {exc}") from None
        if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise ConfigError(f"decision log {self.path} is not writable")
        self._fh: Any = None  # opened on the first write
        self._lock = threading.Lock()

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        self.write_rendered([self.render(rec) for rec in records])

    def write_rendered(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append records `render` has made already (the service renders once for the file and the database)."""
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        with self._lock:
            if self._fh is not None and self._fh.tell() + len(data) > self.max_bytes:
                self._rotate()
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(data)
            self._fh.flush()

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.path, 0o600)  # an existing file made with a wider mode is narrowed too
        fh = os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")
        if fh.tell() >= self.max_bytes:
            fh.close()
            self._rotate()
            return self._open()
        return fh

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for i in range(self.backups, 0, -1):
            older = rotated(self.path, i)
            newer = self.path if i == 1 else rotated(self.path, i - 1)
            if newer.exists():
                os.replace(newer, older)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def rotated(path: Path, i: int) -> Path:
    return path.with_name(f"{path.name}.{i}")


def decision_files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    older = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: -int(p.suffix[1:]))
    return older + ([path] if path.is_file() else [])


def read_decisions(path: Path | str) -> list[dict[str, Any]]:
    """Every decision in the log and its rotated files, oldest first; or in the shared database, where `path` is
    its URL (`[state] database_url`)."""
    from openfirst.state.database import is_database_url, read_database_decisions

    if is_database_url(str(path)):
        return read_database_decisions(str(path))
    path = Path(path)
    files = decision_files(path)
    if not files:
        raise ConfigError(f"decision log {path} does not exist")
    out, problems = [], []
    for lineno, row, error, path in ((n, r, e, f) for f in files for n, r, e in iter_raw_rows(f, "jsonl")):
        if error is None and (not row.get("id") or not isinstance(row.get("target"), str) or not row["target"]):
            error = "a decision needs an id and a target (the model's name)"
        if error:
            problems.append((str(path), lineno, error))
        else:
            out.append(row)
    if problems:
        shown = "\n".join(f"  {f}:{n}: {why}" for f, n, why in problems[:10])
        raise LogFormatError(f"{len(problems)} bad line(s) in {path}:\n{shown}", problems)
    if not out:
        raise LogFormatError(f"{path}: no decisions", [])
    return out


