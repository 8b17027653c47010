"""A local engine in a supervised child process: the same answers as in process; killed with SIGSEGV mid-request,
the request gets a typed retryable EngineCrashed naming the signal, the engine restarts and the next request is
served; a load failure is a typed error, not a hang."""

import os
import signal
import threading
import time

import pytest

from openfirst.compiler.backends.isolated import EngineSpec, IsolatedBackend
from openfirst.compiler.errors import BackendError, EngineCrashed

TICKET = "My parcel has not arrived after three weeks and nobody answers my emails. Order 5521."


def test_an_engine_that_cannot_load_is_a_typed_error_naming_the_cause(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    with pytest.raises(BackendError, match="no GGUF file"):
        IsolatedBackend(EngineSpec("llama.cpp", str(tmp_path / "absent.gguf")))


def test_an_unknown_engine_is_refused():
    with pytest.raises(BackendError, match="unknown local engine"):
        EngineSpec("tensorrt")


@pytest.fixture(scope="module")
def isolated():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    backend = IsolatedBackend(EngineSpec("llama.cpp", options={"n_threads": 2}))
    yield backend
    backend.close()


def _program(backend):
    from openfirst.compiler.schema_spec import as_task
    from openfirst.compiler.program import Program, ProgramOptions

    return Program(as_task("name, age int"), backend, ProgramOptions(max_tokens=64, max_retries=0))


@pytest.mark.slow
def test_the_isolated_engine_answers_as_the_in_process_one(isolated):
    from openfirst.compiler.backends.llamacpp_local import LlamaCppBackend
    from openfirst.compiler.program import Result

    text = "Ada Lovelace was 36."
    here = _program(LlamaCppBackend.load(n_threads=2)).run_many([text])[0]
    there = _program(isolated).run_many([text])[0]
    assert isinstance(there, Result), there
    assert there.output.model_dump() == here.output.model_dump() and there.token_ids == here.token_ids
    assert isolated.health()["state"] == "ok" and isolated.health()["threads"] == 2
    assert isolated.pid != os.getpid()


@pytest.mark.slow
def test_streamed_tokens_cross_the_process_boundary(isolated):
    seen = []
    gen = isolated.generate([[{"role": "user", "content": "Say hello."}]], None, 12,
                            on_token=lambda row, tok: seen.append((row, tok)))[0]
    assert gen.error is None and len(seen) >= 2 and all(row == 0 for row, _ in seen)
    assert isolated.tokenizer.decode([t for _, t in seen]) in gen.text or gen.text.startswith(
        isolated.tokenizer.decode([t for _, t in seen[:1]]))


@pytest.mark.slow
def test_sigsegv_mid_request_is_a_retryable_engine_crash_and_the_next_request_is_served(isolated):
    pid = isolated.pid
    answers = []
    long_prompt = [{"role": "user", "content": "Write a long story about the sea. " * 40}]
    worker = threading.Thread(target=lambda: answers.extend(isolated.generate([long_prompt, long_prompt], None,
                                                                              400)))
    worker.start()
    deadline = time.monotonic() + 30
    while not isolated.busy and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # the engine is decoding this request now
    os.kill(pid, signal.SIGSEGV)
    worker.join(60)
    assert len(answers) == 2 and all(isinstance(g.error, EngineCrashed) for g in answers)
    err = answers[0].error
    assert err.retryable and err.signal == "SIGSEGV" and "SIGSEGV" in str(err)
    assert isolated.health()["crashes"] == 1 and "SIGSEGV" in isolated.health()["last_crash"]
    from openfirst.compiler.program import Result

    again = _program(isolated).run_many(["Ada Lovelace was 36."])[0]  # waits for the restart
    assert isinstance(again, Result), again
    health = isolated.health()
    assert health["state"] == "ok" and health["restarts"] == 1 and isolated.pid not in (None, pid)


def test_a_backend_reporting_its_engine_dead_ends_the_child_and_the_engine_restarts():
    """vLLM's backend turns its EngineDeadError into EngineCrashed; the child must not stay up with a dead engine
    (every later request would fail): it exits, the request gets EngineCrashed, and a fresh child starts."""
    from openfirst.compiler.backends.fake import ScriptedEngineSpec

    spec = ScriptedEngineSpec("vllm", replies=[EngineCrashed("vLLM's engine core died", retryable=False)])
    backend = IsolatedBackend(spec)
    try:
        first_pid = backend.pid
        gen = backend.generate([[{"role": "user", "content": "hi"}]], {"schema": {}}, 8)[0]
        assert isinstance(gen.error, EngineCrashed) and gen.error.retryable
        assert "engine core died" in str(gen.error) and backend.crashes == 1
        assert backend._back.wait(60) and backend.health()["state"] == "ok"
        assert backend.restarts == 1 and backend.pid not in (None, first_pid)
    finally:
        backend.close()
