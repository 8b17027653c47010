"""Routing decisions of concurrent requests, batched: one bad input fails only its own request."""

import asyncio

import pytest

from openfirst.core.errors import ConfigError
from openfirst.pipeline.batching import BatchingRouter
from tests.helpers import fake_router


def test_a_bad_input_fails_only_its_own_request():
    """A lone surrogate used to fail the whole embedding batch: 10 of 12 unrelated /v1/route requests got 500."""
    gate = BatchingRouter(fake_router(), max_batch=64)

    async def go():
        texts = [f"refund my order {i}" for i in range(11)] + ["bad \ud800 text"]
        return await asyncio.gather(*(gate.route_many([t]) for t in texts), return_exceptions=True)

    out = asyncio.run(go())
    assert all(isinstance(o, list) and o[0].target in ("local", "frontier") for o in out[:11])
    assert isinstance(out[11], ConfigError) and "Unicode" in str(out[11])


def test_router_refuses_text_that_is_not_valid_unicode():
    with pytest.raises(ConfigError, match="Unicode"):
        fake_router().route_many(["ok", "bad \udfff"])
