"""Routing decisions for concurrent requests, batched: one embedding call serves every query that arrived
while the previous batch was being embedded."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence


class BatchingRouter:
    """`Router.route_many` for concurrent callers (the pipeline's router stage): inputs queued while a batch is embedded go together in the
    next batch, so load raises batch size instead of queueing single embeddings. One worker thread."""

    def __init__(self, router: Any, max_batch: int = 64):
        self.router = router
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="openfirst-router")

    async def route_many(self, texts: Sequence[str]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        self._pending.extend(zip(texts, futures))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            batch = [(t, fut) for t, fut in batch if not fut.done()]  # requests cut off meanwhile: dropped
            if batch:
                await self._route(loop, batch)

    async def _route(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[str, asyncio.Future]]) -> None:
        """Decide `batch` in one call; if that fails, each input alone, so one bad input fails only its request."""
        try:
            decisions = await loop.run_in_executor(self._pool, self.router.route_many, [t for t, _ in batch])
        except Exception as exc:  # noqa: BLE001 - isolated below, or handed to the one caller it belongs to
            if len(batch) > 1:
                for item in batch:
                    await self._route(loop, [item])
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, fut), d in zip(batch, decisions):
            if not fut.done():
                fut.set_result(d)
