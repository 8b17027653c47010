"""Real Redis and PostgreSQL servers on loopback, started from the distribution's binaries (`.ci/setup` installs
them) in a folder of their own, for the replica tests and benchmarks: start, kill (SIGKILL, as a crash), restart
on the same port and data. PostgreSQL runs with fsync off (a killed server keeps every commit in the OS's cache;
a machine crash would not). Not for production."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from openfirst.compiler.backends.llamacpp_server import free_port
from openfirst.core.process import stop_process


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s:g} s")


class RedisServer:
    """`redis-server` with append-only persistence (fsync always: a killed server keeps every write)."""

    def __init__(self, folder: Path, password: str = "of-redis-pw"):
        self.folder, self.password, self.port = Path(folder), password, free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--requirepass", self.password,
             "--protected-mode", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 10)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (bash .ci/setup installs it)")
    return found


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb), password-authenticated user `openfirst`, database `openfirst`.
    As root it runs as the `postgres` system user (PostgreSQL refuses root)."""

    def __init__(self, folder: Path, password: str = "of-pg-pw"):
        if os.geteuid() == 0:  # the postgres user must reach its folder: not under root's private temp folders
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="openfirst-pg-", dir="/tmp"))
        self.folder, self.password, self.port = Path(folder), password, free_port()
        self.data = self.folder / "data"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        try:
            _pg_bin("initdb")
            return True
        except RuntimeError:
            return False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://openfirst:{self.password}@127.0.0.1:{self.port}/openfirst"

    @staticmethod
    def _owner() -> dict[str, str]:
        """Popen's user/group: the `postgres` system user when we are root (the server itself, no wrapper)."""
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    def start(self) -> "PostgresServer":
        fresh = not self.data.exists()
        if fresh:
            self.folder.mkdir(parents=True, exist_ok=True)
            pw = self.folder / "pw"
            pw.write_text(self.password + "\n")
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres")
                shutil.chown(pw, "postgres")
            subprocess.run([_pg_bin("initdb"), "-D", str(self.data), "-U", "openfirst", "--auth=scram-sha-256",
                            f"--pwfile={pw}", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, cwd=self.folder, **self._owner())
        with open(self.folder / "postgres.log", "ab") as err:
            self.proc = subprocess.Popen(
                [_pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                 "-k", str(self.folder), "-c", "fsync=off",
                 "-c", "full_page_writes=off"], stdout=subprocess.DEVNULL, stderr=err, cwd=self.folder,
                **self._owner())
        _wait_port(self.port, self.proc, "postgres")
        if fresh:
            self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="openfirst", password=self.password,
                                     dbname="postgres", autocommit=True) as conn:
                    conn.execute("CREATE DATABASE openfirst")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash) and its backends, as a machine failure would take them."""
        if self.proc is not None and self.proc.poll() is None:
            children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            for pid in children.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in children.split()):
                time.sleep(0.05)

    def stop(self, remove: bool = True) -> None:
        stop_process(self.proc, 20, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        if remove and os.geteuid() == 0:
            shutil.rmtree(self.folder, ignore_errors=True)
