"""Start llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on 127.0.0.1.

Serves the embedded SmolLM2-135M-Instruct GGUF by default, so the OpenAI-compatible backend
can be tested and benchmarked against a real server that really generates text. Build
llama-cpp-python with `CMAKE_ARGS=-DLLAVA_BUILD=OFF pip install 'llama-cpp-python[server]'`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from openfirst.compiler.errors import BackendError
from openfirst.core.process import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, url: str, timeout_s: float) -> str | None:
    """Poll `url` until it answers 200. None once it does; otherwise what went wrong."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode} at start-up"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return None
        except OSError:
            time.sleep(0.3)
    return f"did not answer within {timeout_s:.0f}s"


class ServerProcess:
    """A local server process on 127.0.0.1 (llama.cpp's, vLLM's); use as a context manager. Subclasses give the
    command line (`command`), the environment (`environment`) and the path that answers 200 once it serves."""

    health_path = "/v1/models"
    what = "server"

    def __init__(self, *, port: int | None = None, startup_timeout_s: float = 120.0,
                 log_path: str | Path | None = None):
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None

    def start(self):
        self._log = open(self.log_path, "wb") if self.log_path else None  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     env=self.environment())
        problem = wait_until_serving(self.proc, f"http://127.0.0.1:{self.port}{self.health_path}",
                                     self.startup_timeout_s)
        if problem is None:
            return self
        self.stop()
        raise BackendError(f"{self.what} {problem}" + (f" (log: {self.log_path})" if self.log_path else ""))

    def stop(self) -> None:
        stop_process(self.proc, 30)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LlamaCppServer(ServerProcess):
    """llama-cpp-python's server. `base_url` ends in /v1; the model alias is `alias`."""

    what = "llama.cpp server"

    def __init__(self, model_path: str | Path | None = None, *, alias: str = "smollm2", n_ctx: int = 4096,
                 n_threads: int | None = None, port: int | None = None, startup_timeout_s: float = 120.0,
                 log_path: str | Path | None = None):
        super().__init__(port=port, startup_timeout_s=startup_timeout_s, log_path=log_path)
        if model_path is None:
            from openfirst.compiler.tokenizer import SMOLLM2_GGUF, smollm2_gguf_dir

            model_path = smollm2_gguf_dir() / SMOLLM2_GGUF
        self.model_path = Path(model_path)
        self.alias = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias",
                self.alias, "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.n_threads), "--verbose", "False"]

    def start(self) -> "LlamaCppServer":
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise BackendError("llama-cpp-python is not installed",
                               hint="CMAKE_ARGS=-DLLAVA_BUILD=OFF pip install 'llama-cpp-python[server]'") from exc
        return super().start()
