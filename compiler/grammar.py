"""Grammar stage: a normalised schema compiled for one tokenizer by llguidance (bounded whitespace).

Features the engine does not implement are relaxed out of the grammar one by one and
recorded in the report as post-validated; anything else the engine rejects is a
`GrammarCompileError`. Compiled grammars are cached in memory and on disk, keyed by
schema hash, tokenizer hash, engine and options. Compilation runs on a helper thread
(llguidance drops the GIL) under a time limit; a timeout leaves the process healthy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfirst.compiler.errors import CompileTimeout, GrammarCompileError
from openfirst.compiler.schema import FeatureReport, drop_format, drop_keyword, oneof_to_anyof
from openfirst.compiler.tokenizer import TokenizerInfo

# compact separators and no free whitespace: unbounded whitespace makes small models loop forever
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[([^\]]*)\]")
_UNKNOWN_FORMAT = re.compile(r"Unknown format: (\S+)")
MAX_RELAXATIONS = 32
_OPTIONS_TEXT = json.dumps(JSON_OPTIONS, sort_keys=True)


@dataclass
class CompiledGrammar:
    key: str
    engine: str
    grammar: str
    schema: dict  # what the grammar enforces (normalised, possibly relaxed)
    report: FeatureReport
    compile_s: float
    cached: bool
    _template: Any

    def matcher(self):
        """A fresh matcher positioned at the start of the output."""
        return self._template.deep_copy()

    def stats(self) -> dict[str, Any]:
        return {"engine": self.engine, "grammar_bytes": len(self.grammar), "compile_ms": 1000 * self.compile_s,
                "cached": self.cached, "exact": self.report.exact}


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="openfirst-compile")


def run_with_timeout(fn, timeout_s: float, what: str):
    """Run `fn` on a helper thread; raise CompileTimeout if it is not done in time.

    llguidance releases the GIL while it compiles, so the caller stays responsive; a
    compilation that overran finishes (bounded by llguidance's own fuel limits) and is
    discarded.
    """
    future = _POOL.submit(fn)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        raise CompileTimeout(f"{what} took longer than {timeout_s:g} s",
                             hint="simplify the schema or raise the compile timeout") from None


class GrammarCompiler:
    """Compiles schemas for one tokenizer; thread-safe in-memory cache plus an optional disk cache."""

    engine = "llguidance"

    def __init__(self, tokenizer: TokenizerInfo, *, timeout_s: float = 10.0, cache_dir: Path | None = None):
        self.tokenizer = tokenizer
        self.timeout_s = timeout_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory: dict[str, CompiledGrammar] = {}
        self._lock = threading.Lock()

    def cache_key(self, schema: dict | str) -> str:
        """Hash of the schema text (key order kept: it decides the order the grammar emits properties in),
        the tokenizer, the engine and the options."""
        text = schema if isinstance(schema, str) else _text(schema)
        h = hashlib.sha256(text.encode())
        h.update(f"|{self.tokenizer.hash}|{self.engine}|{_OPTIONS_TEXT}".encode())
        return h.hexdigest()

    def compile(self, schema: dict, report: FeatureReport) -> CompiledGrammar:
        """Compile `schema`; neither it nor `report` is modified (relaxation works on copies)."""
        text = _text(schema)
        key = self.cache_key(text)
        with self._lock:
            hit = self._memory.get(key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        disk = self._read_disk(key)
        if disk is not None:
            grammar, relaxed, rep = disk["grammar"], disk["schema"], _report_from(disk["report"], report)
            template = self._matcher(grammar)
            if template.is_error():
                raise GrammarCompileError(f"cached grammar no longer compiles: {template.get_error()}")
            cached = True
        else:
            grammar, template, relaxed, rep = self._compile_relaxing(schema, text, report)
            cached = False
            self._write_disk(key, {"grammar": grammar, "schema": relaxed, "report": rep.to_dict()})
        out = CompiledGrammar(key, self.engine, grammar, relaxed, rep, time.perf_counter() - start, cached, template)
        with self._lock:
            self._memory[key] = out
        return out

    def _matcher(self, grammar: str):
        import llguidance

        return run_with_timeout(lambda: llguidance.LLMatcher(self.tokenizer.ll, grammar, log_level=0),
                                self.timeout_s, "grammar compilation")

    def _compile_relaxing(self, schema: dict, text: str, report: FeatureReport):
        """Relax what llguidance does not implement (tokenizer-free, `relax_for_llguidance`), then build the
        matcher for this tokenizer."""
        grammar, schema, report = relax_for_llguidance(schema, report, self.timeout_s, text)
        matcher = self._matcher(grammar)
        if matcher.is_error():
            raise GrammarCompileError(f"llguidance cannot compile this schema: {matcher.get_error()}")
        return grammar, matcher, schema, report

    def _read_disk(self, key: str) -> dict | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _write_disk(self, key: str, body: dict) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{key}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(body))
        tmp.replace(self.cache_dir / f"{key}.json")


def relax_for_llguidance(schema: dict, report: FeatureReport, timeout_s: float = 10.0, text: str | None = None
                         ) -> tuple[str, dict, FeatureReport]:
    """(grammar, schema, report): keywords llguidance does not implement, unknown formats and `oneOf` it cannot
    prove exclusive are taken out of a copy of the schema (the report names each; validation enforces them after).
    Needs no tokenizer, so engines that compile the schema themselves (vLLM's structured outputs) get the same
    relaxed schema as openfirst's own grammar. Neither `schema` nor `report` is modified."""
    import llguidance

    text = text if text is not None else _text(schema)
    source: dict | str = text
    for _ in range(MAX_RELAXATIONS):
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(source, defaults=JSON_OPTIONS)
        except ValueError as exc:
            raise GrammarCompileError(f"schema rejected by llguidance: {exc}") from exc
        error = run_with_timeout(lambda: llguidance.LLMatcher.validate_grammar(grammar), timeout_s,
                                 "grammar compilation")
        if not error:
            return grammar, schema, report
        if source is text:  # first relaxation: work on private copies
            schema, report = json.loads(text), copy.deepcopy(report)
        if not _relax(schema, report, error):
            raise GrammarCompileError(f"llguidance cannot compile this schema: {error}")
        source = schema
    raise GrammarCompileError("too many relaxations needed to compile this schema")


def _relax(schema: dict, report: FeatureReport, error: str) -> bool:
    if m := _UNIMPLEMENTED.search(error):
        keys = [k.strip().strip('"') for k in m.group(1).split(",") if k.strip()]
        why = "not implemented by the grammar engine; checked by validation"
        return any([drop_keyword(schema, k, report, why) for k in keys])
    if m := _UNKNOWN_FORMAT.search(error):
        return drop_format(schema, m.group(1), report)
    if "oneOf" in error:
        return oneof_to_anyof(schema, report)
    return False



def _text(schema: Any) -> str:
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _report_from(saved: dict, base: FeatureReport) -> FeatureReport:
    rep = copy.deepcopy(base)
    rep.post_validated = [(d["keyword"], d["pointer"], d["why"]) for d in saved["post_validated"]]
    return rep


# Keywords XGrammar's JSON-schema converter enforces; anything else in a schema is reported as
# post-validated (XGrammar ignores unknown keywords silently, which the report must not).
XGRAMMAR_ENFORCED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf",
    "$ref", "$defs", "definitions", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum",
}


class XGrammarMatcher:
    """XGrammar's matcher behind the llguidance matcher methods the backends use."""

    def __init__(self, compiled, stop_token: int | None):
        import xgrammar as xgr

        self._m = xgr.GrammarMatcher(compiled)
        self._stop = stop_token
        self._error = ""

    def fill(self, bitmask, index: int) -> None:
        self._m.fill_next_token_bitmask(bitmask, index)

    def consume_token(self, token: int) -> bool:
        ok = bool(self._m.accept_token(token))
        if not ok:
            self._error = f"token {token} rejected"
        return ok

    def is_error(self) -> bool:
        return bool(self._error)

    def get_error(self) -> str:
        return self._error

    def is_stopped(self) -> bool:
        return bool(self._m.is_terminated())

    def is_accepting(self) -> bool:
        return bool(self._m.is_terminated()) or (self._stop is not None and self._m.accept_token(self._stop))


class XGrammarCompiledGrammar(CompiledGrammar):
    def matcher(self):
        return XGrammarMatcher(self._template, None)


class XGrammarCompiler(GrammarCompiler):
    """The alternative engine: XGrammar, compact separators, no free whitespace.

    XGrammar compiles in-process and may hold the GIL, so its time limit is checked but
    cannot interrupt a compilation already running (the benchmark runs it out of process).
    """

    engine = "xgrammar"

    def compile(self, schema: dict, report: FeatureReport) -> CompiledGrammar:
        import xgrammar as xgr

        key = self.cache_key(schema)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        start = time.perf_counter()
        report = copy.deepcopy(report)
        for kw, ptr in report.enforced:
            if kw not in XGRAMMAR_ENFORCED:
                report.post_validated.append((kw, ptr, "not enforced by XGrammar; checked by validation"))
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer.hf, vocab_size=self.tokenizer.ll.vocab_size)
        compiler = xgr.GrammarCompiler(info, max_threads=1)
        try:
            compiled = run_with_timeout(
                lambda: compiler.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                     separators=(JSON_OPTIONS["item_separator"],
                                                                 JSON_OPTIONS["key_separator"])),
                self.timeout_s, "XGrammar compilation")
        except CompileTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - xgrammar raises several error types
            raise GrammarCompileError(f"XGrammar cannot compile this schema: {exc}") from exc
        out = XGrammarCompiledGrammar(key, self.engine, str(compiled.grammar), schema, report,
                                      time.perf_counter() - start, False, compiled)
        with self._lock:
            self._memory[key] = out
        return out


def make_compiler(engine: str, tokenizer: TokenizerInfo, **kw) -> GrammarCompiler:
    engines = {"llguidance": GrammarCompiler, "xgrammar": XGrammarCompiler}
    if engine not in engines:
        raise GrammarCompileError(f"unknown grammar engine {engine!r}", hint="llguidance or xgrammar")
    return engines[engine](tokenizer, **kw)
