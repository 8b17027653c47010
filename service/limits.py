"""ASGI middleware: body-size and concurrency limits, and per-request metrics.

The body is read here, before the app sees it, counting bytes as they arrive: a chunked upload
without Content-Length is cut off at the limit just like one that declares its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Awaitable, Callable

from openfirst.service.http_errors import error_json
from openfirst.service.metrics import ServiceMetrics

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
LIMITED_PREFIX = "/v1/"


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def drain(in_flight: set[asyncio.Task], timeout_s: float = 5.0) -> None:
    """Let the requests in flight run to their end. At shutdown, past its grace period, uvicorn cancels them and
    then stops the process at once: awaited here (in the lifespan's shutdown) their handlers still log."""
    pending = [t for t in in_flight if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)


def endpoint_label(scope: Scope) -> str:
    """The metrics label of a request: its route template; raw paths would make unbounded label sets."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


class LimitsMiddleware:
    def __init__(self, app: Any, *, max_body_bytes: int, max_concurrency: int, queue_timeout_s: float,
                 metrics: ServiceMetrics, body_timeout_s: float = 10.0, in_flight: set[asyncio.Task] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.queue_timeout_s = queue_timeout_s
        self.metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrency)
        self.in_flight = in_flight if in_flight is not None else set()  # see `drain`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        limited = scope["path"].startswith(LIMITED_PREFIX)
        acquired = False
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            # the whole body first, within body_timeout_s: a slow sender never holds a concurrency slot
            body = await self._read_body(scope, receive, send_watch)
            if body is None:
                return
            if limited and not (acquired := await self._acquire(send_watch)):
                return
            await self.app(scope, _replay(body, receive), send_watch)
        except asyncio.CancelledError:  # shutdown past its grace period: answer if nothing was sent yet
            if status["code"] == 500:
                with contextlib.suppress(Exception):
                    await send_json(send_watch, 503, error_json("shutting_down", "the service is shutting down",
                                                                "retry on another replica", True))
            raise
        finally:
            self.in_flight.discard(task)
            if acquired:
                self._slots.release()
                self.metrics.in_flight.dec()
            endpoint = endpoint_label(scope)
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    async def _acquire(self, send: Send) -> bool:
        """A concurrency slot within queue_timeout_s, or 503 `overloaded` (False)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s or 1e-9)
        except asyncio.TimeoutError:
            await send_json(send, 503, error_json("overloaded", "too many requests in flight", "retry after a moment",
                                                  True), {"Retry-After": "1"})
            return False
        self.metrics.in_flight.inc()
        return True

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 (or when the client went away)."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return b""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = error_json("request_too_large", f"request body exceeds {self.max_body_bytes} bytes",
                             "send smaller batches")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_json(send, 413, too_big, {"Connection": "close"})
            return None
        chunks, size = [], 0
        deadline = time.monotonic() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 1e-3))
            except asyncio.TimeoutError:
                await send_json(send, 408, error_json("body_timeout", f"the request body did not arrive within "
                                                      f"{self.body_timeout_s:g} s", "send the body at once"),
                                {"Connection": "close"})
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_json(send, 413, too_big, {"Connection": "close"})
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: disconnect notices

    return replay
