"""vLLM adapter, without an engine: vLLM's outputs map to results and typed errors (a FAKE `vllm.LLM` records what
the adapter sends), and the Ray Data pieces build rows. The live runs are in test_vllm_live.py."""

from dataclasses import dataclass

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.backends.vllm_offline import (VLLMOfflineBackend, VLLMOptions, ray_config_kwargs,
                                                      ray_postprocess, ray_preprocess, vllm_constraint)
from openfirst.compiler.errors import IncompleteOutput
from openfirst.compiler.program import Program, ProgramOptions
from openfirst.compiler.task import compile_task

class Label(BaseModel):
    """Label the text."""

    label: str = Field(max_length=10)


@dataclass
class _Completion:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class _RequestOutput:
    prompt_token_ids: list
    outputs: list


class RecordingLLM:
    """A FAKE stand-in for `vllm.LLM` that records what the adapter passes to `chat`."""

    def __init__(self, texts):
        self.texts, self.calls = list(texts), []

    def chat(self, messages, sampling_params, use_tqdm=False):
        self.calls.append((messages, sampling_params))
        return [_RequestOutput([1, 2, 3], [_Completion(t, [0] * 4, "length" if t.endswith("…") else "stop")])
                for t in self.texts[:len(messages)]]


def test_batched_chat_and_outputs_map_to_results_and_typed_errors():
    llm = RecordingLLM(['{"label":"spam"}', '{"label":"sp…'])
    backend = VLLMOfflineBackend(llm, "m", make_params=lambda kw: kw)
    program = Program(compile_task(Label), backend, ProgramOptions(max_tokens=8, max_retries=0))
    ok, cut = program.run_many(["buy now", "hello"])
    messages, params = llm.calls[0]
    assert len(messages) == 2 and messages[0][-1] == {"role": "user", "content": "buy now"}
    assert params["structured_outputs"]["json"] == program.task.schema and params["max_tokens"] == 8
    assert ok.output.label == "spam" and ok.backend == "vllm" and ok.usage == {"prompt_tokens": 3,
                                                                               "completion_tokens": 4}
    assert isinstance(cut.error, IncompleteOutput)


def test_the_ray_path_sends_the_program_s_prompt_and_schema_and_checks_answers_like_the_program():
    """Reported: the Ray path sent the unrelaxed schema and the unguarded prompt, with no retries."""
    from openfirst.compiler.backends.fake import ScriptedBackend
    from openfirst.compiler.program import Program

    task = compile_task(Label)
    program = Program(task, ScriptedBackend([]), ProgramOptions(max_tokens=32, max_retries=1))
    cfg = ray_config_kwargs(VLLMOptions(model="m", tensor_parallel_size=2), concurrency=4, batch_size=32)
    assert cfg["model_source"] == "m" and cfg["concurrency"] == 4 and cfg["engine_kwargs"]["tensor_parallel_size"] == 2
    row = ray_preprocess(program, "body")({"id": 7, "body": "buy now"})
    assert row["messages"] == program.messages("buy now")  # the outline prompt, as the program sends it
    assert row["sampling_params"]["structured_outputs"]["json"] == vllm_constraint(task)
    assert row["sampling_params"]["max_tokens"] == 32
    post = ray_postprocess(program, "body")
    assert post({"id": 7, "body": "buy now", "generated_text": '{"label":"spam"}'})["output"] == {"label": "spam"}
    bad = post({"id": 8, "body": "hi", "generated_text": '{"label":"far too long a label"}'})
    assert bad["error"]["type"] == "OutputValidationError" and bad["retry"] is True
    again = ray_preprocess(program, "body")(bad)  # the retry carries the rejected answer and why
    assert again["messages"][-2]["content"] == '{"label":"far too long a label"}'
    assert post({**bad, "generated_text": "{}"})["retry"] is False  # max_retries=1 spent


@pytest.mark.parametrize("flags, dtype", [("avx2 fma f16c", "float32"),
                                          ("avx2 avx512f avx512_bf16", "float32"),  # not measured: kept
                                          ("avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", "bfloat16")])
def test_the_cpu_dtype_follows_the_cpu(monkeypatch, flags, dtype):
    from openfirst.compiler.backends import vllm_offline
    from openfirst.core import machine

    monkeypatch.setattr(vllm_offline, "cuda_available", lambda: False)
    monkeypatch.setattr(machine, "this_cpu", lambda: machine.CPU("test CPU", "x86_64", 2, frozenset(flags.split())))
    options = VLLMOptions.for_this_machine()
    assert options.dtype == dtype and options.enforce_eager and options.cpu_reserved_cores == 0
    assert VLLMOptions.for_this_machine(dtype="float32").dtype == "float32"  # an explicit choice wins


def test_the_repetition_penalty_goes_to_the_generated_tokens_only_processor():
    llm = RecordingLLM(['{"label":"spam"}'])
    backend = VLLMOfflineBackend(llm, "m", make_params=lambda kw: kw)
    Program(compile_task(Label), backend, ProgramOptions(max_tokens=8, repetition_penalty=1.3)).run_many(["x"])
    params = llm.calls[0][1]
    assert params["repetition_penalty"] == 1.0 and params["extra_args"] == {"openfirst_generated_penalty": 1.3}
    backend.penalise_prompt = True  # vLLM's own, over the prompt too: kept for comparison
    Program(compile_task(Label), backend, ProgramOptions(max_tokens=8, repetition_penalty=1.3)).run_many(["x"])
    assert llm.calls[1][1]["repetition_penalty"] == 1.3 and llm.calls[1][1]["extra_args"] == {
        "openfirst_generated_penalty": 1.0}


class VLLMClientError(Exception):
    """Named as vLLM's base of request errors (vllm.exceptions), raised by the FAKE engine below."""


class VLLMValidationError(VLLMClientError):
    pass


def test_a_request_vllm_refuses_fails_that_batch_with_a_typed_error():
    """Reproduces a crash: a prompt past max_model_len raised vLLM's VLLMValidationError (not a ValueError) out of
    `generate`, ending the whole run."""
    from openfirst.compiler.errors import BackendError

    class TooLong(RecordingLLM):
        def chat(self, messages, sampling_params, use_tqdm=False):
            raise VLLMValidationError("This model's maximum context length is 4096 tokens. However, your prompt ...")

    backend = VLLMOfflineBackend(TooLong([]), "m", make_params=lambda kw: kw)
    (out,) = Program(compile_task(Label), backend, ProgramOptions(max_tokens=8, max_retries=0)).run_many(["x" * 9])
    assert isinstance(out.error, BackendError) and "context length" in str(out.error)
    assert "raise max_model_len" in out.error.hint
