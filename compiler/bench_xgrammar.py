"""Raw XGrammar on MaskBench, in a worker process that is killed and restarted on timeout.

XGrammar can spend minutes compiling some schemas and may hold the GIL, so it runs out
of process: a timed-out schema costs one worker restart, never the benchmark.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections import Counter
from typing import Any

import numpy as np

SEPARATORS = (",", ":")


def _worker(conn) -> None:
    import xgrammar as xgr

    from openfirst.compiler.tokenizer import smollm2_tokenizer

    tok = smollm2_tokenizer()
    info = xgr.TokenizerInfo.from_huggingface(tok.hf, vocab_size=tok.ll.vocab_size)
    compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    eos = tok.hf.eos_token_id
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        schema, instances = msg
        t0 = time.perf_counter()
        try:
            cg = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=SEPARATORS)
        except Exception as exc:  # noqa: BLE001 - any engine failure is a compile error for the benchmark
            conn.send(("compile_error", time.perf_counter() - t0, str(exc)[:200], [], []))
            continue
        dt = time.perf_counter() - t0
        accepted, masks = [], []
        for variants, valid in instances:
            accepted.append(any(_force(xgr, cg, tokens, valid, bitmask, masks, eos) for tokens in variants))
        conn.send(("ok", dt, "", accepted, masks))


def _force(xgr, cg, tokens, valid, bitmask, masks, eos) -> bool:
    m = xgr.GrammarMatcher(cg)
    for t in tokens:
        if valid:
            s = time.perf_counter()
            m.fill_next_token_bitmask(bitmask)
            masks.append(time.perf_counter() - s)
        if not m.accept_token(t):
            return False
    return bool(m.accept_token(eos))


class XGrammarRunner:
    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self.ctx = mp.get_context("spawn")
        self.proc = None
        self.conn = None
        self.counts: Counter = Counter()
        self.compile_s: list[float] = []
        self.mask_s: list[float] = []

    def _start(self) -> None:
        """Spawn a worker (a few seconds: it loads the tokenizer and XGrammar)."""
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        self.conn = parent
        if not parent.poll(300) or parent.recv() != "ready":
            raise RuntimeError("xgrammar worker did not start")

    def submit(self, schema: Any, instances: list[tuple[list[list[int]], bool]]) -> None:
        """Hand one schema to the worker and return at once: it runs while the caller goes on."""
        self.collect()
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((schema, instances))
        self._pending = (instances, time.perf_counter())

    def collect(self) -> None:
        """Wait for the pending schema's result, up to the time limit counted from submission."""
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is None:
            return
        instances, sent = pending
        if not self.conn.poll(max(0.0, self.timeout_s - (time.perf_counter() - sent))):
            self.proc.kill()
            self.proc.join()
            self.proc = None
            self.counts["timeout"] += 1
            return
        try:
            status, dt, _err, accepted, masks = self.conn.recv()
        except EOFError:  # the worker crashed (segfault): count it, restart next time
            self.proc = None
            self.counts["crash"] += 1
            return
        if status != "ok":
            self.counts["compile_error"] += 1
            return
        self.counts["compiled"] += 1
        self.compile_s.append(dt)
        self.mask_s.extend(masks)
        for ok, (_, valid) in zip(accepted, instances):
            kind = "valid" if valid else "invalid"
            self.counts[f"{kind}_instances"] += 1
            if valid and not ok:
                self.counts["valid_rejected"] += 1
            if ok and not valid:
                self.counts["invalid_accepted"] += 1

    def close(self) -> None:
        self.collect()
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()

    def summary(self) -> dict[str, Any]:
        pct = lambda xs, q, k: float(np.percentile(np.asarray(xs) * k, q)) if xs else None  # noqa: E731
        keys = ("schemas", "compiled", "compile_error", "timeout", "crash", "valid_instances", "valid_rejected",
                "invalid_instances", "invalid_accepted")
        return {**{k: int(self.counts.get(k, 0)) for k in keys},
                "compile_ms": {"p50": pct(self.compile_s, 50, 1e3), "p99": pct(self.compile_s, 99, 1e3)},
                "mask_us": {"p50": pct(self.mask_s, 50, 1e6), "p99": pct(self.mask_s, 99, 1e6)}}
