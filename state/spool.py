"""Rows waiting on local disk for the database: one append-only JSONL file per replica (held under an exclusive
lock while the replica lives) and the offset up to which the database has them. A row is on disk before the
request that made it returns, so a database outage loses nothing; each row carries a unique id that the database
takes once (a row written again after a crash between the insert and the offset update is ignored there).

A replica that died leaves its file behind; the next replica to start (or any live one, from time to time) takes
the file's lock, sends what is left, and removes it."""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

from openfirst.core.errors import ConfigError

Row = tuple[str, dict[str, Any]]  # (table, row)


class Spool:
    def __init__(self, path: Path, *, owned: bool = True):
        self.path = path
        self.offset_path = path.with_suffix(".offset")
        self._lock = threading.Lock()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if owned:
                raise ConfigError(f"spool {path} is in use by another process",
                                  hint="give each replica its own [state] replica name") from None
            raise
        self._fd = fd
        self.offset = self._read_offset()

    @classmethod
    def for_replica(cls, folder: Path, replica: str) -> "Spool":
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the spool folder {folder}: {exc}") from None
        return cls(folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', replica)}.jsonl")

    def orphans(self) -> Iterator["Spool"]:
        """Other replicas' files no process holds (their replica died), each locked for the caller."""
        for path in sorted(self.path.parent.glob("*.jsonl")):
            if path == self.path:
                continue
            try:
                yield Spool(path, owned=False)
            except (BlockingIOError, OSError):
                continue

    def append(self, rows: list[Row]) -> None:
        data = "".join(json.dumps({"t": t, "r": r}, ensure_ascii=False) + "\n" for t, r in rows).encode(
            "utf-8", "surrogateescape")
        with self._lock:
            os.write(self._fd, data)

    def read(self, max_rows: int = 2000) -> tuple[list[Row], int]:
        """Rows after the committed offset (whole lines only) and the offset after them."""
        with self._lock:
            size = os.fstat(self._fd).st_size
            data = os.pread(self._fd, min(size - self.offset, 64 * 1024 * 1024), self.offset) if size > self.offset \
                else b""
        rows, end = [], self.offset
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n") or len(rows) >= max_rows:
                break
            end += len(line)
            try:
                obj = json.loads(line)
                rows.append((obj["t"], obj["r"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn line (a crash mid-write) is skipped, never retried forever
        return rows, end

    def commit(self, offset: int) -> None:
        """The database has every row before `offset`; an emptied file is truncated."""
        with self._lock:
            if offset >= os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, 0)
                offset = 0
            tmp = self.offset_path.with_suffix(".offset.tmp")
            tmp.write_text(str(offset))
            os.replace(tmp, self.offset_path)
            self.offset = offset

    def backlog(self) -> int:
        """Bytes not yet in the database."""
        return max(0, os.fstat(self._fd).st_size - self.offset)

    def _read_offset(self) -> int:
        try:
            value = int(self.offset_path.read_text())
        except (OSError, ValueError):
            return 0
        return value if 0 <= value <= os.fstat(self._fd).st_size else 0

    def remove(self) -> None:
        """An orphan fully sent: its files go."""
        for p in (self.path, self.offset_path):
            p.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
