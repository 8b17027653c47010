"""OpenAI-compatible `POST /v1/chat/completions` with `model="openfirst-router"`: plain chat routed per request
between the local model and the frontier, streaming included (RouteLLM's server does the same).

The router decides on the last user message; the privacy rules read every string the request would send
(every message's content parts, names, tool calls, and the request's `user`, `stop`, `response_format`). The
request is an allow-list: typed messages and parameters only, anything else is refused (422), so nothing the
service has not checked can reach the frontier. Text parts only (an image or audio part cannot be checked).
The answer is the chosen backend's own completion, with `model` naming who answered and an `openfirst` field
(also in `X-OpenFirst-*` headers) stating the target, p_success, threshold, latency and cost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, AsyncIterator, Literal

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from openfirst.compiler.errors import BackendError, CompilerError
from openfirst.pipeline import Item, OperatingPoint, Route, RoutedOutcome
from openfirst.pipeline.outcome import error_body
from openfirst.service.auth import caller_of
from openfirst.service.http_errors import ServiceError, check_text, with_deadline
from openfirst.service.service import Service, caller_policy
from openfirst.service.spending import Spend

ROUTER_MODEL = "openfirst-router"
# request fields passed on to the backend as they are; anything else is refused (422), not silently dropped
PASSED_ON = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "presence_penalty",
             "frequency_penalty", "n", "response_format", "stream_options", "user", "logprobs", "top_logprobs",
             "tools", "tool_choice", "parallel_tool_calls")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str = Field(max_length=256)
    arguments: str


class ToolCall(_Strict):
    id: str = Field(max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDef(_Strict):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"] = "function"
    function: FunctionDef


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(None, max_length=256)


class ChatRequest(_Strict):
    model: str = Field(description=f"must be {ROUTER_MODEL!r}")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    openfirst_private: bool = Field(False, description="pin this conversation to the local model")
    openfirst_threshold: float | None = Field(None, description="this request's routing threshold (routing score)")
    openfirst_frontier_share: float | None = Field(None, ge=0.0, le=1.0,
                                                   description="this request's frontier share (calibration queries)")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    stop: str | list[str] | None = None
    # numbers are bounded as OpenAI bounds them: nothing unbounded reaches the frontier
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1, le=1)
    response_format: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # tools pass on to the model that answers; their names, descriptions and schemas are read by the privacy
    # rules like the messages (a remote engine runs them; the in-process local model refuses them: typed 502)
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


PRIVATE_YES = {"1", "true", "yes", "y", "on", "enabled"}
PRIVATE_NO = {"0", "false", "no", "n", "off", "disabled", ""}


def parse_private_flag(value: str | None) -> bool:
    """The `X-OpenFirst-Private` header: a known yes or no word (any case); anything else is refused, never read
    as "not private"."""
    if value is None:
        return False
    word = value.strip().lower()
    if word in PRIVATE_YES or word in PRIVATE_NO:
        return word in PRIVATE_YES
    raise ServiceError(400, "invalid_private_flag", "X-OpenFirst-Private must be a yes or no value",
                       f"use one of {sorted(PRIVATE_YES - {''})} or {sorted(PRIVATE_NO - {''})}")


def text_of(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(p.text for p in message.content or [])


def strings_in(value: Any) -> list[str]:
    """Every string in a JSON value, dict keys included: what the privacy rules read of a request."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            out.extend(k for k in v if isinstance(k, str))
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out


def check_bounds(service: Service, body: ChatRequest, strings: list[str]) -> None:
    """Part, text and token limits, and valid Unicode, before any expensive work (typed 4xx; the message count is
    checked while the body is read)."""
    limits = service.config.limits
    if any(isinstance(m.content, list) and len(m.content) > limits.max_parts for m in body.messages):
        raise ServiceError(413, "too_many_parts", f"a message has more than {limits.max_parts} content parts")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name)
        if value is not None and value > limits.max_output_tokens:
            raise ServiceError(422, "invalid_request", f"{name} {value} is above the limit {limits.max_output_tokens}")
    check_text(strings, limits.max_text_chars)


def register_chat(app: FastAPI, service: Service) -> None:
    class Chat(ChatRequest):
        # the message count is checked while the list is read, before 20,000 messages are validated
        messages: list[ChatMessage] = Field(min_length=1, max_length=service.config.limits.max_messages)

    async def chat(body: Chat, request: Request, x_openfirst_private: str | None = Header(None)) -> Any:
        call = ChatCall.read(service, body, request, x_openfirst_private)
        deadline = service.config.limits.deadline_s
        route = (await with_deadline(deadline, service.route(
            [call.item], extra_texts=[call.privacy_texts], caller=call.caller, chat=True, point=call.point)))[0]
        route = call.admit(route)
        try:
            if body.stream:
                return await _stream(call, route)
            response, route = await with_deadline(deadline, call.open(route))
        except CompilerError:  # the backend's failure: `open` logged it
            call.spend.settle_all(None)
            raise
        except BaseException as exc:  # the deadline, or shutdown past its grace period: the decision is logged
            call.spend.settle_all(None)
            kind = ("cancelled" if isinstance(exc, asyncio.CancelledError) else
                    exc.body["error"]["type"] if isinstance(exc, ServiceError) else type(exc).__name__)
            call.record(RoutedOutcome(call.item, route, cut=kind))
            raise
        meta = call.finish(route, response.get("model"), response.get("usage"))
        return JSONResponse({**response, "openfirst": meta}, headers=_headers(meta))

    chat.__annotations__["body"] = Chat  # local to this app (its limit is the config's): set, not resolved
    app.post("/v1/chat/completions", summary=f"OpenAI-compatible chat, model={ROUTER_MODEL!r} routes it")(chat)


class ChatCall:
    """One chat request on its way through the pipeline's stages: the checked request, what it would send, its
    frontier reservation (`max_tokens` always set on a frontier call, so the reserved worst case is a bound)."""

    def __init__(self, service: Service, caller: Any, item: Item, sent: dict[str, Any], strings: list[str],
                 point: OperatingPoint, message_texts: list[str], user_texts: list[str]):
        self.service, self.caller, self.item, self.point = service, caller, item, point
        # what the privacy rules read: every message's text in order, then the user's messages alone in order (a
        # number split across two messages meets at a junction, also across the assistant's turn between two user
        # turns), then every string the request would send
        self.privacy_texts = message_texts + user_texts + strings
        self.params = {k: sent[k] for k in PASSED_ON if k in sent}  # the checked request's JSON, as it was sent
        self.messages = sent["messages"]  # the checked request, and nothing else, is what is sent
        limit = service.config.limits.max_output_tokens
        self.max_tokens = min(self.params.get("max_completion_tokens") or self.params.get("max_tokens") or limit,
                              limit)
        self.prompt_bytes = sum(len(x.encode("utf-8")) + 4 for x in strings) + 16 * len(self.messages)
        self.spend = Spend(caller, service.models.is_local)
        self.start = time.perf_counter()

    @classmethod
    def read(cls, service: Service, body: ChatRequest, request: Request, private_header: str | None) -> "ChatCall":
        """The request checked: the router model, bounds, a user message to route on, the private flag."""
        caller = caller_of(request)
        if body.model != ROUTER_MODEL:
            raise ServiceError(404, "model_not_found", f"unknown model {body.model!r}",
                               f"use model={ROUTER_MODEL!r}; the router picks the local or the frontier model")
        sent = body.model_dump(exclude_none=True, exclude={"model", "stream", "openfirst_private",
                                                           "openfirst_threshold", "openfirst_frontier_share"})
        strings = strings_in(sent)
        check_bounds(service, body, strings)
        texts = [text_of(m) for m in body.messages]
        users = [t for m, t in zip(body.messages, texts) if m.role == "user"]
        routable = [t for t in users if t.strip()]
        if not routable:
            raise ServiceError(422, "invalid_request", "no user message with text to route on")
        private = body.openfirst_private or parse_private_flag(private_header)
        item = Item(routable[-1], private=private, caller=caller.name if caller is not None else None)
        point = OperatingPoint(threshold=body.openfirst_threshold, frontier_share=body.openfirst_frontier_share)
        return cls(service, caller, item, sent, strings, point, texts, users)

    def admit(self, route: Route) -> Route:
        from openfirst.pipeline.pipeline import worst_case_usd

        if self.service.models.is_local(route.target):
            return route
        price = self.service.models.get(route.target).price
        return self.spend.admit(0, route, lambda: worst_case_usd(price, self.prompt_bytes, self.max_tokens))

    def params_for(self, route: Route) -> dict[str, Any]:
        if self.service.models.is_local(route.target):
            return self.params
        out = {k: v for k, v in self.params.items() if k != "max_completion_tokens"}
        return {**out, "max_tokens": self.max_tokens}

    async def open(self, route: Route, stream: bool = False) -> tuple[Any, Route]:
        """The chosen model's completion (or open stream); on failure, the pipeline's fallback (to the frontier
        only within the caller's budget). A failure that ends the request is logged and raised."""
        try:
            return await _call(self.service, route.target, self.messages, self.params_for(route), stream), route
        except CompilerError as exc:
            fallback = self.service.pipeline.fallback_route(route, exc, caller_policy(self.caller))
            if fallback is not None and not self.service.models.is_local(fallback.target):
                self.spend.settle_all(0.0)
                fallback = fallback if self.admit(fallback).target == fallback.target else None
            if fallback is None:
                raise self.failed(route, exc) from None
        try:
            return await _call(self.service, fallback.target, self.messages, self.params_for(fallback),
                               stream), fallback
        except CompilerError as exc2:
            raise self.failed(fallback, exc2) from None

    def failed(self, route: Route, exc: CompilerError) -> CompilerError:
        self.record(RoutedOutcome(self.item, route, error=exc))
        return exc

    def finish(self, route: Route, model: str | None, usage: dict[str, Any] | None,
               error: BaseException | None = None) -> dict[str, Any]:
        """Settle the spend, log the decision, count the generation; the `openfirst` metadata of the answer."""
        cost = _cost(self.service, route.target, usage)
        self.spend.settle_all(0.0 if self.service.models.is_local(route.target) else cost if usage else None)
        latency = time.perf_counter() - self.start
        self.record(RoutedOutcome(self.item, route, model=model, latency_s=latency, cost_usd=cost, error=error,
                                  answered=True))
        self.service.metrics.generation(route.target, latency, usage or {}, cost)
        return _meta(route, model, latency, cost)

    def record(self, outcome: RoutedOutcome) -> None:
        self.service.record("chat", None, [outcome], time.perf_counter() - self.start)


async def _call(service: Service, target: str, messages: list[dict[str, Any]], params: dict[str, Any],
                stream: bool = False) -> Any:
    """A completion from `target` as a dict, or an (async) iterator of chunks when `stream`."""
    backend = service.models.backend(target)
    if not backend.remote and params.get("tools"):
        raise BackendError(f"the {target} model runs in process and cannot call tools",
                           hint="serve it behind an OpenAI-compatible server ([local] kind = \"server\") for tools")
    if backend.remote:
        response = await backend.achat({"messages": messages, **params, **({"stream": True} if stream else {})})
        return response if stream else response.model_dump(exclude_none=True)
    conv = [{"role": m["role"], "content": m.get("content") if isinstance(m.get("content"), str)
             else text_of(ChatMessage(**m))} for m in messages]
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens") or 512
    temperature = params.get("temperature") or 0.0
    if stream:
        return _in_process_stream(backend, conv, max_tokens, temperature)
    gen = (await backend.agenerate([conv], None, max_tokens, temperature=temperature))[0]
    if gen.error is not None:
        raise gen.error
    return {**_head(backend, "chat.completion"),
            "choices": [{"index": 0, "finish_reason": "stop" if gen.finished else "length",
                         "message": {"role": "assistant", "content": gen.text}}], "usage": _usage(gen)}


async def _in_process_stream(backend: Any, conv: list[dict[str, str]], max_tokens: int, temperature: float
                             ) -> AsyncIterator[dict[str, Any]]:
    """Chunks from an in-process model as its tokens are chosen (no grammar), in OpenAI's chunk shape."""
    head = _head(backend, "chat.completion.chunk")
    yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    async for piece in backend.astream(conv, max_tokens, temperature):
        if isinstance(piece, str):
            yield {**head, "choices": [{"index": 0, "delta": {"content": piece}}]}
        elif piece.error is not None:
            raise piece.error
        else:
            yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop" if piece.finished
                                        else "length"}], "usage": _usage(piece)}


def _head(backend: Any, kind: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
            "model": backend.model_name}


def _usage(gen: Any) -> dict[str, int]:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}


async def _stream(call: ChatCall, route: Route) -> StreamingResponse:
    """Server-sent events. The stream is opened (with fallback) before the response starts, so a backend that
    is down still gets a JSON error status; a failure mid-stream ends it with an error event."""
    chunks, route = await with_deadline(call.service.config.limits.deadline_s, call.open(route, stream=True))
    meta = _meta(route, call.service.model_of(route.target), time.perf_counter() - call.start, None)

    async def events() -> AsyncIterator[bytes]:
        usage: dict[str, Any] | None = None
        first, error = True, None
        try:
            async for chunk in chunks:
                data = chunk if isinstance(chunk, dict) else chunk.model_dump(exclude_none=True)
                usage = data.get("usage") or usage
                if first:
                    data = {**data, "openfirst": meta}
                    first = False
                yield f"data: {json.dumps(data)}\n\n".encode()
        except Exception as exc:  # noqa: BLE001 - the stream is already open: report in-band
            error = exc
            yield f"data: {json.dumps({'error': error_body(exc)})}\n\n".encode()
        yield b"data: [DONE]\n\n"
        call.finish(route, meta["model"], usage, error)

    return StreamingResponse(events(), media_type="text/event-stream", headers=_headers(meta))


def _cost(service: Service, target: str, usage: dict[str, Any] | None) -> float | None:
    price = service.models.get(target).price
    if price is None or not usage:
        return None
    return price.cost(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _meta(route: Route, model: str | None, latency_s: float, cost: float | None) -> dict[str, Any]:
    return {**route.public(), "model": model, "latency_ms": round(latency_s * 1000, 3), "cost_usd": cost}


def _headers(meta: dict[str, Any]) -> dict[str, str]:
    return {"X-OpenFirst-Target": meta["target"], "X-OpenFirst-Model": str(meta["model"]),
            "X-OpenFirst-Decided-By": meta["decided_by"],
            "X-OpenFirst-P-Success": "" if meta["p_success"] is None else f"{meta['p_success']:.6f}",
            "X-OpenFirst-Threshold": "" if meta["threshold"] is None else f"{meta['threshold']:.6f}"}
