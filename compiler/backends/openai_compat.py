"""Backend for any OpenAI-compatible server: vLLM's `vllm serve`, llama.cpp's server, or OpenAI.

The compiled schema travels the way each server expects it (`flavor`):
- `openai`: `response_format` json_schema with `strict: true`, after the strict-mode transform
  (results are mapped back: nulls forced on optional fields are dropped so defaults apply);
- `vllm`: `extra_body={"structured_outputs": {"json": schema, "disable_any_whitespace": true}}`;
- `llama.cpp`: `response_format` json_object with `schema` (llama-cpp-python's server);
- `json_schema`: `response_format` json_schema, not strict (llama.cpp's C++ server, SGLang, ...).

One retry loop (`retry.py`, the SDK's retries are off), an overall deadline per call, an
async path with a concurrency limit, and per-call cost from a price table. The API key is
held as a secret: it never appears in reprs, logs or error messages.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

from pydantic import SecretStr

from openfirst.compiler.backends.base import AsyncBackend, Generation, RequestBackend
from openfirst.compiler.backends.pricing import Price
from openfirst.compiler.backends.retry import RetryPolicy, acall_with_retries, call_with_retries
from openfirst.compiler.errors import CompilerError, MalformedResponse, Refusal
from openfirst.compiler.grammar import relax_for_llguidance
from openfirst.compiler.strict import StrictLimits, restore, to_strict
from openfirst.compiler.task import CompiledTask
from openfirst.core.redact import redact_url, url_secrets

Flavor = Literal["openai", "vllm", "llama.cpp", "json_schema"]
LOCAL_FLAVORS = ("vllm", "llama.cpp")  # engines we run ourselves: log-probabilities requested


@dataclass
class RequestFormat:
    """What a request carries to constrain the answer, and how to map the answer back."""

    request: dict[str, Any]  # extra keyword arguments of chat.completions.create
    restore: Callable[[Any], Any] | None = None
    post_validated: list[tuple[str, str]] = field(default_factory=list)


def request_format(task: CompiledTask, flavor: Flavor, limits: StrictLimits = StrictLimits()) -> RequestFormat:
    """The task's schema as `flavor` servers take it (raises StrictSchemaError before any request)."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", task.name)[:64] or "output"
    if flavor == "openai":
        strict = to_strict(task.json_schema, limits)
        return RequestFormat({"response_format": {"type": "json_schema", "json_schema": {
            "name": name, "schema": strict.schema, "strict": True}}},
            restore=lambda data: restore(data, task.json_schema), post_validated=strict.post_validated)
    if flavor == "vllm":  # relaxed as openfirst's grammar stage relaxes it: vLLM's llguidance compiles it too
        return RequestFormat({"extra_body": {"structured_outputs": {"json": relax_for_llguidance(
            task.schema, task.report)[1], "disable_any_whitespace": True}}})
    if flavor == "llama.cpp":
        schema, relaxed = _without_long_repeats(task.schema)
        return RequestFormat({"response_format": {"type": "json_object", "schema": schema}}, post_validated=relaxed)
    if flavor == "json_schema":
        return RequestFormat({"response_format": {"type": "json_schema", "json_schema": {
            "name": name, "schema": task.schema, "strict": False}}})
    raise ValueError(f"unknown flavor {flavor!r}")


# llama.cpp unrolls maxLength / maxItems into nested optional rules; thousands deep crash its server
# (SIGSEGV measured with maxLength 2000). Longer caps are left to post-validation and max_tokens.
LLAMACPP_MAX_REPEAT = 256


def _without_long_repeats(schema: Any, pointer: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """A copy without maxLength / maxItems above LLAMACPP_MAX_REPEAT, and what was left out."""
    relaxed: list[tuple[str, str]] = []

    def walk(node: Any, ptr: str) -> Any:
        if isinstance(node, list):
            return [walk(x, f"{ptr}/{i}") for i, x in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k in ("maxLength", "maxItems") and isinstance(v, int) and v > LLAMACPP_MAX_REPEAT:
                relaxed.append((k, ptr))
                continue
            out[k] = walk(v, f"{ptr}/{k}") if k not in ("enum", "const", "default", "examples") else v
        return out

    return walk(schema, pointer), relaxed


class OpenAICompatibleBackend(RequestBackend, AsyncBackend):
    """Chat completions against `base_url` (None: api.openai.com) for model `model`. `client` / `async_client`:
    OpenAI SDK clients built by the caller, used as given (the async path derives its client from `client`
    when only that one is given: same base URL, key, headers and organisation)."""

    name = "openai-compatible"
    remote = True

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | SecretStr | None = None,
                 flavor: Flavor = "openai", retry: RetryPolicy = RetryPolicy(), max_concurrency: int = 8,
                 price: Price | None = None, limits: StrictLimits = StrictLimits(), name: str | None = None,
                 client: Any = None, async_client: Any = None):
        import openai

        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.model_name = model
        self.base_url = base_url
        self.flavor: Flavor = flavor
        self.retry = retry
        self.max_concurrency = max_concurrency
        self.price = price
        self.limits = limits
        if name:
            self.name = name
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key or "")
        # the SDK's own retries are off: `retry.py` is the only retry loop
        self.client = client or openai.OpenAI(base_url=base_url, api_key=self._key.get_secret_value() or "none",
                                              max_retries=0)
        self.async_client = async_client
        self._async: dict[int, tuple[Any, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:
        return (f"OpenAICompatibleBackend(name={self.name!r}, model={self.model_name!r}, "
                f"base_url={redact_url(self.base_url)!r}, flavor={self.flavor!r}, api_key={'***' if self._key else None})")

    @property
    def has_api_key(self) -> bool:
        return bool(self._key.get_secret_value())

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._key.get_secret_value(), *url_secrets(self.base_url))

    def constraint_for(self, task: CompiledTask) -> RequestFormat:
        return request_format(task, self.flavor, self.limits)

    def _request(self, messages: list[dict[str, str]], fmt: RequestFormat | None, max_tokens: int,
                 temperature: float, repetition_penalty: float) -> dict[str, Any]:
        req: dict[str, Any] = {"model": self.model_name, "messages": messages, "max_tokens": max_tokens,
                               "temperature": temperature}
        if fmt is not None:
            req.update(fmt.request)  # shared, read-only: the schema is not copied per request
        if self.flavor in LOCAL_FLAVORS:  # each chosen token's log-probability (the cascade's evidence)
            req["logprobs"] = True
            if self.flavor == "llama.cpp":  # llama-cpp-python's server returns none unless top_logprobs >= 1
                req["top_logprobs"] = 1
        if repetition_penalty != 1.0 and self.flavor in LOCAL_FLAVORS:
            key = "repetition_penalty" if self.flavor == "vllm" else "repeat_penalty"
            req["extra_body"] = {**req.get("extra_body", {}), key: repetition_penalty}
        return req

    def _generation(self, response: Any, fmt: RequestFormat | None) -> Generation:
        """A chat completion -> Generation; raises MalformedResponse (retried) or Refusal (not retried)."""
        choices = getattr(response, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise MalformedResponse("the response has no choices[0].message")
        choice = choices[0]
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        model = getattr(response, "model", None) or self.model_name
        cost = self.price.cost(prompt, completion) if self.price is not None else None
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise Refusal(f"{model} refused: {refusal[:300]}", refusal=refusal)
        text = choice.message.content
        if text is None:
            raise MalformedResponse("the response message has no content")
        if fmt is not None and fmt.restore is not None and choice.finish_reason != "length":
            try:
                text = json.dumps(fmt.restore(json.loads(text)), ensure_ascii=False)
            except json.JSONDecodeError:
                pass  # left to validation, which reports it and retries with feedback
        gen = Generation(text, prompt, completion, choice.finish_reason != "length", model=model, cost_usd=cost)
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content and fmt is not None and fmt.restore is None:
            gen.token_texts = [str(getattr(t, "token", "")) for t in content]
            gen.token_logprobs = [float(getattr(t, "logprob", float("nan"))) for t in content]
            gen.logprobs_masked = self.flavor == "vllm"  # llama.cpp's server samples its grammar after logprobs
        return gen

    def _what(self) -> str:
        return f"{self.name} {self.model_name}"

    def _one(self, request: dict[str, Any], fmt: RequestFormat | None) -> Generation:
        def attempt(timeout: float) -> Generation:
            return self._generation(self.client.chat.completions.create(**request, timeout=timeout), fmt)

        try:
            gen, attempts = call_with_retries(attempt, self.retry, self._what(), self._secrets)
        except CompilerError as exc:
            return Generation.failed(exc, self.model_name)
        gen.attempts = attempts
        return gen

    def generate(self, conversations: Sequence[list[dict[str, str]]], constraint: RequestFormat | None,
                 max_tokens: int, temperature: float = 0.0, repetition_penalty: float = 1.0) -> list[Generation]:
        """One request per conversation, at most `max_concurrency` in flight."""
        requests = [self._request(c, constraint, max_tokens, temperature, repetition_penalty) for c in conversations]
        if len(requests) == 1:
            return [self._one(requests[0], constraint)]
        with ThreadPoolExecutor(min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, constraint), requests))

    def _async_client(self) -> tuple[Any, asyncio.Semaphore]:
        """The async client and the concurrency limit, per event loop (both are bound to their loop): the injected
        `async_client` as given, else one made like the sync client (its URL, key, headers, organisation)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is None:
            client = self.async_client or _async_twin(self.client)
            entry = self._async[id(loop)] = (client, asyncio.Semaphore(self.max_concurrency))
        return entry

    async def _aone(self, request: dict[str, Any], fmt: RequestFormat | None) -> Generation:
        client, limit = self._async_client()

        async def attempt(timeout: float) -> Generation:
            return self._generation(await client.chat.completions.create(**request, timeout=timeout), fmt)

        async with limit:
            try:
                gen, attempts = await acall_with_retries(attempt, self.retry, self._what(), self._secrets)
            except CompilerError as exc:
                return Generation.failed(exc, self.model_name)
        gen.attempts = attempts
        return gen

    async def agenerate(self, conversations: Sequence[list[dict[str, str]]], constraint: RequestFormat | None,
                        max_tokens: int, temperature: float = 0.0, repetition_penalty: float = 1.0
                        ) -> list[Generation]:
        """Async `generate`: all conversations at once, at most `max_concurrency` in flight per event loop."""
        requests = [self._request(c, constraint, max_tokens, temperature, repetition_penalty) for c in conversations]
        return list(await asyncio.gather(*(self._aone(r, constraint) for r in requests)))

    async def achat(self, request: dict[str, Any]) -> Any:
        """A plain chat completion (a stream when `request["stream"]`) on this backend's model, with its
        retries and concurrency limit; raises the typed CompilerError of the last attempt. For a stream,
        retries cover opening it, not its chunks."""
        client, limit = self._async_client()
        request = {**request, "model": self.model_name}

        async def attempt(timeout: float) -> Any:
            return await client.chat.completions.create(**request, timeout=timeout)

        async with limit:
            response, _ = await acall_with_retries(attempt, self.retry, self._what(), self._secrets)
        return response


def _async_twin(client: Any) -> Any:
    """An `AsyncOpenAI` with the sync client's base URL, key, organisation, project, headers, query and timeout
    (the SDK's retries off: `retry.py` is the only retry loop)."""
    import openai

    return openai.AsyncOpenAI(base_url=str(client.base_url), api_key=client.api_key,
                              organization=getattr(client, "organization", None),
                              project=getattr(client, "project", None), timeout=client.timeout,
                              default_headers=getattr(client, "_custom_headers", None) or None,
                              default_query=getattr(client, "_custom_query", None) or None, max_retries=0)
