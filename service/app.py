"""The HTTP service: FastAPI app over `Service` (see `openfirst serve`). OpenAPI at /openapi.json and /docs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from openfirst.core.errors import ConfigError, InvalidRequest, OpenFirstError
from openfirst.pipeline import Item, OperatingPoint, RoutedOutcome
from openfirst.pipeline.outcome import error_body
from openfirst.service.auth import AuthMiddleware, Caller, caller_of
from openfirst.service.http_errors import ServiceError, check_text, error_json, status_for, with_deadline
from openfirst.service.limits import LimitsMiddleware, drain, endpoint_label
from openfirst.service.service import Service

log = logging.getLogger("openfirst.service")


class InputItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, description="the text to extract from (or route)")
    id: str | None = Field(None, max_length=200, description="your id; echoed, and the key for outcome labels")
    private: bool = Field(False, description="pin to the local model")


class BatchRequest(BaseModel):
    """One input (`input`) or a batch (`inputs`, texts or objects)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"input": "I was charged twice for my March invoice."},
        {"inputs": ["My parcel never arrived.", {"input": "Reset my password", "id": "t-17", "private": True}]}]})

    input: str | None = Field(None, min_length=1)
    inputs: list[str | InputItem] | None = Field(None, min_length=1)
    id: str | None = Field(None, max_length=200)
    private: bool = Field(False, description="pin every input of this request to the local model")
    openfirst_threshold: float | None = Field(None, allow_inf_nan=False,
                                              description="this request's routing threshold (on the routing score)")
    openfirst_frontier_share: float | None = Field(
        None, ge=0.0, le=1.0, description="this request's frontier share, on the [router] calibration queries")

    def operating_point(self) -> OperatingPoint:
        return OperatingPoint(threshold=self.openfirst_threshold, frontier_share=self.openfirst_frontier_share)

    @model_validator(mode="after")
    def _one_of(self) -> "BatchRequest":
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give exactly one of 'input' (one text) or 'inputs' (a batch)")
        for i, x in enumerate(self.inputs or []):
            if isinstance(x, str) and not x.strip():
                raise ValueError(f"inputs[{i}] is empty")
        if self.input is not None and not self.input.strip():
            raise ValueError("input is empty")
        return self

    def items(self, caller: Caller | None = None) -> list[Item]:
        name = caller.name if caller is not None else None
        if self.input is not None:
            item = Item(self.input, private=self.private, caller=name)
            if self.id:
                item.id = self.id
            return [item]
        out = []
        for x in self.inputs or []:
            if isinstance(x, str):  # used as validated: a second validation could fail where the first passed
                out.append(Item(x, private=self.private, caller=name))
                continue
            item = Item(x.input, private=x.private or self.private, caller=name)
            if x.id:
                item.id = x.id
            out.append(item)
        return out


def create_app(service: Service) -> FastAPI:
    """The FastAPI app: limits and keys as middleware, typed errors as JSON, then the endpoints."""
    from openfirst.service.chat import register_chat

    in_flight: set[asyncio.Task] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.warm_up)
        yield
        await drain(in_flight)  # requests cut off by the end of the grace period still log their decisions

    app = FastAPI(lifespan=lifespan, title="openfirst", version="0.1.0",
                  summary="Routed extraction: compiled tasks on a local "
                  "open model, the frontier API only where the router says the local model will fail.")
    app.state.service = service
    limits = service.config.limits
    app.add_middleware(LimitsMiddleware, max_body_bytes=limits.max_body_bytes,
                       max_concurrency=limits.max_concurrency, queue_timeout_s=limits.queue_timeout_s,
                       metrics=service.metrics, body_timeout_s=limits.body_timeout_s, in_flight=in_flight)
    app.add_middleware(AuthMiddleware, auth=service.auth)  # outermost: who calls, before any body is read
    _register_errors(app, service)
    _register_info(app, service)
    _register_extract(app, service)
    register_chat(app, service)
    return app


def _register_info(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", summary="liveness; with a key allowed 'health' (or without keys configured): what is "
             "configured")
    @app.get("/health", summary="alias of /healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        caller = caller_of(request)
        engine = service.engine_health()
        # degraded: the local engine is restarting after a crash, or down (requests get 503 until it is back)
        # or a shared store (Redis, the database) is down: requests take the fail-closed path
        status = "ok" if (engine is None or engine["state"] == "ok") and not service.degraded else "degraded"
        if service.auth.enabled and (caller is None or not caller.may("health")):
            return {"status": status}
        return {"status": status, **service.describe(), "engine": engine}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        service.state_health()  # the shared stores' gauges, as of now
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/models", summary="OpenAI's model list: openfirst-router (chat) and one entry per task")
    async def models(request: Request) -> dict[str, Any]:
        from openfirst.service.chat import ROUTER_MODEL

        caller = caller_of(request)
        created = int(service.started_at)
        data = [{"id": ROUTER_MODEL, "object": "model", "created": created, "owned_by": "openfirst"}]
        data += [{"id": f"task:{name}", "object": "model", "created": created, "owned_by": "openfirst",
                  "extract_path": f"/v1/tasks/{name}/extract"}
                 for name in service.tasks if caller is None or caller.may_run(name)]
        return {"object": "list", "data": data}

    @app.get("/v1/tasks", summary="the tasks served, with their JSON Schemas")
    async def tasks(request: Request) -> dict[str, Any]:
        caller = caller_of(request)
        return {"tasks": [{"name": name, "instructions": t.instructions, "json_schema": t.json_schema,
                           "frontier": service.runs_on_frontier(name),
                           "pinned_local": name in service.config.privacy.pin_tasks}
                          for name, t in service.tasks.items() if caller is None or caller.may_run(name)]}


def _register_extract(app: FastAPI, service: Service) -> None:
    limits = service.config.limits

    class Batch(BatchRequest):
        # the batch size is checked while the list is read, before its items are validated
        inputs: list[str | InputItem] | None = Field(None, min_length=1, max_length=limits.max_batch)

    async def extract(name: str, body: Batch, request: Request) -> JSONResponse:
        caller = caller_of(request)
        if name not in service.tasks or (caller is not None and not caller.may_run(name)):
            visible = sorted(t for t in service.tasks if caller is None or caller.may_run(t))
            raise ServiceError(404, "unknown_task", f"no task named {name!r}", f"tasks: {', '.join(visible)}")
        items = body.items(caller)
        check_text([item.text for item in items], limits.max_text_chars)
        start = time.perf_counter()
        outcomes = await with_deadline(limits.deadline_s, service.extract(name, items, caller,
                                                                          body.operating_point()))
        return _extract_response(name, body, outcomes, time.perf_counter() - start)

    async def route(body: Batch, request: Request) -> dict[str, Any]:
        items = body.items(caller_of(request))
        check_text([item.text for item in items], limits.max_text_chars)
        start = time.perf_counter()
        routes = await with_deadline(limits.deadline_s, service.route(
            items, caller=caller_of(request), point=body.operating_point()))
        latency = time.perf_counter() - start
        decided = [RoutedOutcome(it, r, model=service.model_of(r.target)) for it, r in zip(items, routes)]
        service.record("route", None, decided, latency)
        out = [{"id": o.item.id, **o.route.public(), "model": o.model} for o in decided]
        latency_ms = round(latency * 1000, 3)
        if body.input is not None:
            return {**out[0], "latency_ms": latency_ms}
        return {"decisions": out, "latency_ms": latency_ms}

    # `Batch` is local to this app (its size limit is the config's), so the annotations are set, not resolved
    extract.__annotations__["body"] = route.__annotations__["body"] = Batch
    app.post("/v1/tasks/{name}/extract", summary="extract from one input or a batch, routed per input")(extract)
    app.post("/v1/route", summary="the routing decision only (nothing is generated)")(route)


def _extract_response(task: str, body: BatchRequest, outcomes: list[RoutedOutcome], latency_s: float
                      ) -> JSONResponse:
    """One input: its body, with the status of its error; a batch: every body, the error count and the cost."""
    latency_ms = round(latency_s * 1000, 3)
    results = [o.body for o in outcomes]
    if body.input is not None:
        status = 200 if outcomes[0].error is None else status_for(outcomes[0].error)
        return JSONResponse({"task": task, **results[0], "request_latency_ms": latency_ms}, status_code=status)
    return JSONResponse({"task": task, "results": results, "request_latency_ms": latency_ms,
                         "errors": sum("error" in r for r in results), "cost_usd": _sum_cost(results)})


@contextlib.contextmanager
def serve_in_thread(service: Service, host: str = "127.0.0.1", port: int | None = None,
                    startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve `service` with uvicorn on a background thread (tests, benchmarks, notebooks); yields the base URL."""
    import threading

    import uvicorn

    from openfirst.compiler.backends.llamacpp_server import free_port

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="openfirst-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the service did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _sum_cost(results: list[dict[str, Any]]) -> float | None:
    costs = [r["cost_usd"] for r in results if r.get("cost_usd") is not None]
    return float(sum(costs)) if costs else None


def _register_errors(app: FastAPI, service: Service) -> None:
    """Every error as one JSON shape with its status; request validation has its own (`_invalid_request`)."""
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        service.metrics.errors.labels(_endpoint(request), exc.body["error"]["type"]).inc()
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = _invalid_request(exc.errors())
        service.metrics.errors.labels(_endpoint(request), body["error"]["type"]).inc()
        return JSONResponse(body, status_code=status)

    @app.exception_handler(InvalidRequest)
    async def invalid_options(request: Request, exc: InvalidRequest) -> JSONResponse:
        service.metrics.errors.labels(_endpoint(request), "invalid_request").inc()
        return JSONResponse(error_json("invalid_request", exc.message, exc.hint), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_json(kind, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(OpenFirstError)
    async def openfirst_error(request: Request, exc: OpenFirstError) -> JSONResponse:
        service.metrics.errors.labels(_endpoint(request), type(exc).__name__).inc()
        return JSONResponse({"error": error_body(exc)}, status_code=status_for(exc))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s", type(exc).__name__, _endpoint(request), exc_info=exc)
        service.metrics.errors.labels(_endpoint(request), "internal").inc()
        return JSONResponse(error_json("internal_error", f"internal error ({type(exc).__name__})"), status_code=500)


def _invalid_request(errors: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """A request that failed validation: bad JSON (400), too many inputs or messages (413), or invalid (422);
    the input is never echoed back (it may be large or private): location and message only."""
    bad_json = any(e.get("type") == "json_invalid" for e in errors)
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in errors[:20]]
    too_long = {tuple(e.get("loc", ()))[:2] for e in errors if e.get("type") == "too_long"}
    too_many = ("batch_too_large" if ("body", "inputs") in too_long else
                "too_many_messages" if ("body", "messages") in too_long else None)
    kind = "invalid_json" if bad_json else too_many or "invalid_request"
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
    body = error_json(kind, message, "send fewer per request" if too_many else "see the OpenAPI spec at /openapi.json")
    body["error"]["details"] = details
    return (400 if bad_json else 413 if too_many else 422), body


def _endpoint(request: Request) -> str:
    return endpoint_label(request.scope)
