"""vLLM offline backend (GPU, production): `vllm.LLM` with structured outputs, and Ray Data batch runs.

vLLM cannot be installed on the CPU machines this project is developed on (no CPU wheel):
this adapter is written to vLLM's documented API (v0.12+: `SamplingParams(structured_outputs=
StructuredOutputsParams(json=...))`, engine `structured_outputs_config`), its live tests skip
when `vllm` cannot be imported, and a contract test checks the requests it builds.

- Whitespace is disabled (`disable_any_whitespace`), the grammar backend is llguidance
  ("guidance", default) or "xgrammar"; every output is still validated by the task.
- Tensor parallelism: `tensor_parallel_size` (one engine over several GPUs).
- Data parallelism for inputs that outgrow one engine: `ray_processor` builds a Ray Data
  LLM processor (`ray.data.llm`), which runs `concurrency` vLLM engine replicas; no cluster
  code of our own.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.backends.base import Generation, RequestBackend
from openfirst.compiler.errors import BackendError
from openfirst.compiler.task import CompiledTask


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="Hugging Face id or local path")
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    structured_backend: Literal["guidance", "xgrammar"] = "guidance"
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    dtype: str = "auto"
    seed: int = 0
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to vllm.LLM as is")


def llm_kwargs(options: VLLMOptions) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)` (also Ray Data's `engine_kwargs`, without `model`)."""
    kw: dict[str, Any] = {
        "model": options.model,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "dtype": options.dtype,
        "seed": options.seed,
        "structured_outputs_config": {"backend": options.structured_backend, "disable_any_whitespace": True},
    }
    if options.max_model_len is not None:
        kw["max_model_len"] = options.max_model_len
    kw.update(options.engine_kwargs)
    return kw


def sampling_kwargs(schema: dict[str, Any], max_tokens: int, temperature: float = 0.0,
                    repetition_penalty: float = 1.0) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams`; `structured_outputs` holds StructuredOutputsParams' fields."""
    return {"max_tokens": max_tokens, "temperature": temperature, "repetition_penalty": repetition_penalty,
            "structured_outputs": {"json": schema, "disable_any_whitespace": True}}


def vllm_sampling_params(kwargs: dict[str, Any]) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kw = dict(kwargs)
    structured = kw.pop("structured_outputs", None)
    return SamplingParams(**kw, structured_outputs=StructuredOutputsParams(**structured) if structured else None)


class VLLMOfflineBackend(RequestBackend):
    """Batched generation with `LLM.chat` over many conversations at once."""

    name = "vllm"

    def __init__(self, llm: Any, model_name: str,
                 make_params: Callable[[dict[str, Any]], Any] = vllm_sampling_params):
        self.llm = llm
        self.model_name = model_name
        self.make_params = make_params

    @classmethod
    def load(cls, options: VLLMOptions) -> "VLLMOfflineBackend":
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError("vLLM is not installed (it needs a GPU machine: pip install vllm)",
                               hint="on CPU use the transformers backend or an OpenAI-compatible server") from exc
        return cls(LLM(**llm_kwargs(options)), options.model)

    def constraint_for(self, task: CompiledTask) -> dict[str, Any]:
        return task.schema

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: dict[str, Any] | None,
                 max_tokens: int, temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        kw = sampling_kwargs(constraint or {}, max_tokens, temperature, repetition_penalty)
        if constraint is None:
            kw.pop("structured_outputs")
        outputs = self.llm.chat([list(c) for c in conversations], self.make_params(kw), use_tqdm=False)
        gens = []
        for out in outputs:
            best = out.outputs[0]
            gens.append(Generation(best.text, len(out.prompt_token_ids or []), len(best.token_ids or []),
                                   best.finish_reason != "length", model=self.model_name))
        return gens


def ray_processor(task: CompiledTask, options: VLLMOptions, *, concurrency: int = 1, batch_size: int = 64,
                  max_tokens: int = 512, temperature: float = 0.0, text_field: str = "text") -> Any:
    """A Ray Data LLM processor: rows {"id", text_field} in, rows {"id", "text", "output" | "error"} out.

    `concurrency` vLLM engine replicas (each `tensor_parallel_size` GPUs) share the dataset;
    outputs are validated against the task in the postprocess step."""
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise BackendError("Ray Data LLM is not installed (pip install 'ray[data,llm]')") from exc
    config = vLLMEngineProcessorConfig(**ray_config_kwargs(options, concurrency, batch_size))
    return build_processor(config, preprocess=ray_preprocess(task, max_tokens, temperature, text_field),
                           postprocess=ray_postprocess(task))


def ray_config_kwargs(options: VLLMOptions, concurrency: int, batch_size: int) -> dict[str, Any]:
    engine = llm_kwargs(options)
    return {"model_source": engine.pop("model"), "engine_kwargs": engine, "concurrency": concurrency,
            "batch_size": batch_size}


def ray_preprocess(task: CompiledTask, max_tokens: int, temperature: float, text_field: str):
    def pre(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row.get("id"), "messages": task.messages(str(row[text_field])),
                "sampling_params": sampling_kwargs(task.schema, max_tokens, temperature)}
    return pre


def ray_postprocess(task: CompiledTask):
    def post(row: dict[str, Any]) -> dict[str, Any]:
        from openfirst.compiler.errors import CompilerError

        text = row.get("generated_text") or ""
        try:
            output = task.parse(text)
            return {"id": row.get("id"), "text": text, "output": output.model_dump(mode="json")
                    if hasattr(output, "model_dump") else output, "error": None}
        except CompilerError as exc:
            return {"id": row.get("id"), "text": text, "output": None,
                    "error": {"type": type(exc).__name__, "message": exc.message}}
    return post
