"""Callers: API keys (stored as SHA-256 hashes), what each may do, its rate limit and its frontier budget.

A key is sent as `Authorization: Bearer <key>`. Per key: the tasks and endpoints it may use, whether it may
reach the frontier at all, requests per minute, and USD of frontier spend per UTC day. Spend is reserved before
a frontier call at its worst case (prompt bytes as tokens, `max_tokens` of output, every retry) and settled with
the real cost after, so a key's spend never passes its budget. Over budget means local-only or HTTP 429, by the
key's `over_budget` policy.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from openfirst.service.spending import Ledger

Endpoint = Literal["extract", "route", "chat", "tasks", "models", "metrics", "health"]
DEFAULT_ENDPOINTS: list[Endpoint] = ["extract", "chat", "tasks", "models"]
KEY_PREFIX = "of_"


def new_key() -> str:
    """A fresh API key: 256 random bits (shown once; only its hash is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """SHA-256 of a key. Keys are 256-bit random tokens, so an unsalted fast hash cannot be brute-forced."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeySettings(BaseModel):
    """One caller's key (`[[auth.keys]]` in openfirst.toml)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="who holds the key (logs and metrics)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of the key: `openfirst keys create`")
    tasks: list[str] | None = Field(None, description="tasks it may use; null: all")
    endpoints: list[Endpoint] = Field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    frontier: bool = Field(True, description="may its requests reach the frontier at all")
    rate_per_minute: int = Field(600, ge=1, le=1_000_000)
    frontier_budget_usd_per_day: float | None = Field(None, ge=0, description="null: no budget")
    over_budget: Literal["local", "reject"] = Field("local", description="past the budget: stay local, or 429")
    exclude_models: list[str] = Field(default_factory=list, description="registry models its requests never use "
                                      "(not 'local')")

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeySettings] = Field(default_factory=list, description="none: no authentication, loopback only")

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[KeySettings]) -> list[KeySettings]:
        for what in ("name", "sha256"):
            values = [getattr(k, what) for k in keys]
            if len(values) != len(set(values)):
                raise ValueError(f"two keys share a {what}")
        return keys


class RateLimiter:
    """Token bucket: `rate_per_minute` requests, refilled continuously."""

    def __init__(self, rate_per_minute: int):
        self.capacity = float(rate_per_minute)
        self.tokens = self.capacity
        self.per_second = rate_per_minute / 60.0
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 if a request may go now, else the seconds until one may."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.per_second


@dataclass
class Caller:
    """An authenticated key and its live state: its rate limiter and budget ledger, in process, or shared by the
    replicas (`state`: `openfirst.state.shared.SharedState`)."""

    settings: KeySettings
    state: Any = None
    limiter: Any = field(init=False)
    ledger: Any = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limiter = RateLimiter(s.rate_per_minute)
        self.ledger = Ledger(s.frontier_budget_usd_per_day)
        if self.state is not None:
            self.limiter = self.state.limiter(s.name, s.rate_per_minute, self.limiter)
            self.ledger = self.state.ledger(s.name, s.frontier_budget_usd_per_day, self.ledger)

    @property
    def name(self) -> str:
        return self.settings.name

    def may(self, endpoint: str) -> bool:
        return endpoint in self.settings.endpoints

    def may_run(self, task: str) -> bool:
        return self.settings.tasks is None or task in self.settings.tasks


class Authenticator:
    def __init__(self, settings: AuthSettings, state: Any = None):
        self.by_hash = {k.sha256: Caller(k, state) for k in settings.keys}

    @property
    def enabled(self) -> bool:
        return bool(self.by_hash)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller a `Bearer` header names, or None (missing, malformed or unknown key)."""
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return self.by_hash.get(key_hash(key.strip()))


def endpoint_of(path: str) -> str | None:
    """The permission a path needs (None: public)."""
    if path in ("/healthz", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"):
        return None
    if path.startswith("/v1/tasks/") and path.endswith("/extract"):
        return "extract"
    return {"/v1/route": "route", "/v1/chat/completions": "chat", "/v1/tasks": "tasks", "/v1/models": "models",
            "/metrics": "metrics"}.get(path, "unknown")


class AuthMiddleware:
    """ASGI: who is calling, before the body is read or a concurrency slot is taken. Public paths (liveness,
    the OpenAPI docs) pass; every other path needs a valid key (401), its endpoint's permission (403) and room
    in its rate limit (429). The caller goes to `request.state.caller`."""

    def __init__(self, app: Any, *, auth: Authenticator):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        from openfirst.service.http_errors import error_json
        from openfirst.service.limits import send_json

        headers = dict(scope.get("headers") or [])
        caller = self.auth.caller(headers.get(b"authorization", b"").decode("latin-1"))
        scope.setdefault("state", {})["caller"] = caller
        need = endpoint_of(scope["path"])
        if need is not None:
            if caller is None:
                await send_json(send, 401, error_json("invalid_api_key", "a valid API key is required",
                                                      "send Authorization: Bearer <key>"),
                                {"WWW-Authenticate": "Bearer"})
                return
            if need != "unknown" and not caller.may(need):
                await send_json(send, 403, error_json("forbidden", f"key {caller.name!r} may not use {need}",
                                                      "ask for a key with this endpoint"))
                return
            wait = caller.limiter.take()
            if wait > 0:
                await send_json(send, 429, error_json("rate_limited", f"key {caller.name!r} is over its rate limit",
                                                      "slow down", True), {"Retry-After": str(int(wait) + 1)})
                return
        await self.app(scope, receive, send)


def caller_of(request: Any) -> Caller | None:
    """The caller `AuthMiddleware` put on a request (None when the service has no keys configured)."""
    return getattr(request.state, "caller", None)
