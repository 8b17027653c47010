"""vLLM (its CPU build) isolated, live: its engine core killed with SIGSEGV mid-request costs that request a typed,
retryable EngineCrashed instead of a request that waits forever (what `vllm.LLM.chat` did in process), and the
engine comes back for the next request: the same behaviour as llama.cpp and transformers."""

import os
import signal
import threading
import time

import pytest

pytest.importorskip("vllm", reason="vLLM's CPU build is installed by .ci/setup")

from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend, _children, _cmdline  # noqa: E402
from openfirst.compiler.errors import EngineCrashed  # noqa: E402

pytestmark = pytest.mark.slow  # two vLLM engine starts (about 35 s each on 2 cores)

PROMPT = [{"role": "user", "content": "Write a long story about the sea."}]


def test_a_dead_vllm_engine_core_is_an_engine_crash_and_the_engine_restarts():
    backend = IsolatedBackend(EngineSpec("vllm"))
    try:
        assert backend.generate([PROMPT], None, 4)[0].error is None
        cores = [p for p in _children(backend.pid) if "EngineCore" in _cmdline(p)]
        assert len(cores) == 1, [_cmdline(p) for p in _children(backend.pid)]
        answers = []
        worker = threading.Thread(target=lambda: answers.extend(backend.generate([PROMPT] * 4, None, 400)))
        worker.start()
        while not backend.busy:
            time.sleep(0.01)
        time.sleep(0.5)
        os.kill(cores[0], signal.SIGSEGV)
        worker.join(120)
        assert len(answers) == 4 and all(isinstance(g.error, EngineCrashed) for g in answers), answers
        # vLLM reaps its engine core itself (its SIGSEGV handler exits), so the signal may not be readable here
        assert answers[0].error.retryable and "EngineCore" in str(answers[0].error)
        again = backend.generate([PROMPT], None, 4)[0]  # waits for the restart
        assert again.error is None and again.completion_tokens >= 1
        health = backend.health()
        assert health["state"] == "ok" and health["crashes"] == 1 and health["restarts"] == 1
        assert health["dtype"] in {"float32", "bfloat16"}
    finally:
        backend.close()
