"""MaskBench-style correctness and speed of the compile stage on real JSON Schemas.

For every schema: compiled, refused (with the reason) or timed out, by the full
compile stage (schema stage + relaxing llguidance compile) and, in the same run on
the same tokenizer, by raw llguidance. Every test instance is token-forced through
the compiled grammar; the full program also validates with jsonschema (formats
asserted), so `invalid_accepted` counts what the program would return.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from openfirst.compiler.errors import CompilerError, CompileTimeout
from openfirst.compiler.grammar import JSON_OPTIONS, GrammarCompiler, run_with_timeout
from openfirst.compiler.schema import SchemaOptions, normalise, resolve_ref
from openfirst.compiler.tokenizer import TokenizerInfo
from openfirst.compiler.validation import make_validator


def read_maskbench(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)


def force_tokens(matcher, tokens: list[int], bitmask, mask_times: list[float] | None) -> bool:
    """Feed `tokens` one by one; True if every token is allowed and the end is accepting."""
    import llguidance.torch as llt

    for tok in tokens:
        if mask_times is not None:
            t0 = time.perf_counter()
            llt.fill_next_token_bitmask(matcher, bitmask, 0)
            mask_times.append(time.perf_counter() - t0)
        if not matcher.consume_token(tok):
            return False
    return matcher.is_accepting()


def serialise(instance: Any) -> str:
    return json.dumps(instance, separators=(JSON_OPTIONS["item_separator"], JSON_OPTIONS["key_separator"]),
                      ensure_ascii=False)


def _branches(schema: Any, root: Any, depth: int = 0) -> list[dict]:
    """The schema and every anyOf/oneOf/allOf branch under it (refs resolved)."""
    schema = resolve_ref(schema, root)
    if not isinstance(schema, dict) or depth > 10:
        return []
    out = [schema]
    for kw in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(kw, []) if isinstance(schema.get(kw), list) else []:
            out += _branches(sub, root, depth + 1)
    return out


def _best_branch(data: dict, branches: list[dict], root: Any) -> list[dict]:
    """The anyOf/oneOf alternative whose properties cover the data's keys best, with its allOf parts."""
    alts = [b for b in branches if isinstance(b.get("properties"), dict)]
    if not alts:
        return branches
    best = max(alts, key=lambda b: (len(set(data) & set(b["properties"])), -len(set(data) - set(b["properties"]))))
    return _branches(best, root)


def in_schema_order(data: Any, schema: Any, root: Any, depth: int = 0, best: bool = False) -> Any:
    """The same value with object keys in the order the schema lists its properties.

    The grammar emits properties in schema order (one canonical serialisation); an
    instance written in another key order is the same JSON value, so the benchmark
    forces this ordering too.
    """
    if depth > 50:
        return data
    branches = _branches(schema, root)
    if isinstance(data, dict):
        if best:
            branches = _best_branch(data, branches, root)
        order: list[str] = []
        props: dict[str, Any] = {}
        for b in branches:
            for k, sub in (b.get("properties") or {}).items() if isinstance(b.get("properties"), dict) else []:
                if k not in props:
                    order.append(k)
                    props[k] = sub
        keys = [k for k in order if k in data] + [k for k in data if k not in props]
        return {k: in_schema_order(data[k], props.get(k, {}), root, depth + 1, best) for k in keys}
    if isinstance(data, list):
        items = next((b["items"] for b in branches if isinstance(b.get("items"), dict)), {})
        prefix = next((b["prefixItems"] for b in branches if isinstance(b.get("prefixItems"), list)), [])
        return [in_schema_order(x, prefix[i] if i < len(prefix) else items, root, depth + 1, best)
                for i, x in enumerate(data)]
    return data


def candidates(instance: Any, schema: Any) -> list[str]:
    """Serialisations to force: as written, in schema key order (all alternatives' properties
    merged), and in the order of the best-matching alternative at each level."""
    texts = [serialise(instance)]
    for best in (False, True):
        try:
            text = serialise(in_schema_order(instance, schema, schema, best=best))
        except (TypeError, ValueError, AttributeError, RecursionError):
            continue
        if text not in texts:
            texts.append(text)
    return texts


class OrderSearch:
    """Does the grammar accept the instance with its object keys in *some* order?

    A JSON object is unordered, but the grammar emits properties in one fixed order,
    which for nested anyOf/oneOf branches and pattern/additional properties is not
    always the one `candidates` guesses. This walks the value piece by piece with the
    matcher, trying the remaining keys of each object in turn and backtracking, within
    a budget of token-consume attempts. Separate pieces give a non-canonical
    tokenisation, which llguidance accepts like any other.
    """

    def __init__(self, encode, budget: int = 20000):
        self.encode = encode
        self.budget = budget
        self._pieces: dict[str, list[int]] = {}

    def accepts(self, matcher, value: Any, schema: Any = None) -> bool:
        """True if some key order of `value` is accepted; keys are tried in `schema` order first."""
        self.left = self.budget
        if schema is not None:
            try:
                value = in_schema_order(value, schema, schema, best=True)
            except (TypeError, ValueError, AttributeError, RecursionError):
                pass
        try:
            return any(m.is_accepting() for m in self._value(matcher, value))
        except _BudgetSpent:
            return False

    def _feed(self, matcher, text: str):
        self.left -= 1
        if self.left < 0:
            raise _BudgetSpent
        tokens = self._pieces.get(text)
        if tokens is None:
            tokens = self._pieces[text] = self.encode(text)
        m = matcher.deep_copy()
        return m if all(m.consume_token(t) for t in tokens) else None

    def _value(self, matcher, value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            start = self._feed(matcher, "{")
            if start is not None:
                yield from self._members(start, value, list(value), first=True)
        elif isinstance(value, list):
            start = self._feed(matcher, "[")
            if start is not None:
                yield from self._items(start, value, 0)
        else:
            texts = [serialise(value)]
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                texts.append(serialise(int(value)))  # 0.0 and 0 are the same JSON number
            for text in texts:
                m = self._feed(matcher, text)
                if m is not None:
                    yield m

    def _members(self, matcher, value: dict, keys: list[str], first: bool) -> Iterator[Any]:
        if not keys:
            m = self._feed(matcher, "}")
            if m is not None:
                yield m
            return
        sep = "" if first else JSON_OPTIONS["item_separator"]
        for i, key in enumerate(keys):
            m = self._feed(matcher, sep + serialise(key) + JSON_OPTIONS["key_separator"])
            if m is None:
                continue
            for after in self._value(m, value[key]):
                yield from self._members(after, value, keys[:i] + keys[i + 1:], first=False)

    def _items(self, matcher, value: list, i: int) -> Iterator[Any]:
        if i == len(value):
            m = self._feed(matcher, "]")
            if m is not None:
                yield m
            return
        m = matcher if i == 0 else self._feed(matcher, JSON_OPTIONS["item_separator"])
        if m is None:
            return
        for after in self._value(m, value[i]):
            yield from self._items(after, value, i + 1)


class _BudgetSpent(Exception):
    pass


class MaskBench:
    def __init__(self, tokenizer: TokenizerInfo, timeout_s: float = 10.0, xgrammar_every: int = 0):
        self.tok = tokenizer
        self.xgrammar = None
        self.xgrammar_every = xgrammar_every
        if xgrammar_every > 0:
            from openfirst.compiler.bench_xgrammar import XGrammarRunner

            self.xgrammar = XGrammarRunner(timeout_s)
        self.timeout_s = timeout_s
        self.compiler = GrammarCompiler(tokenizer, timeout_s=timeout_s)
        import llguidance.torch as llt

        self.bitmask = llt.allocate_token_bitmask(1, tokenizer.ll.vocab_size)
        self.order_search = OrderSearch(lambda text: tokenizer.hf.encode(text, add_special_tokens=False))
        self.counts: Counter = Counter()
        self.raw: Counter = Counter()
        self.reasons: Counter = Counter()
        self.ttfm: list[float] = []
        self.raw_ttfm: list[float] = []
        self.tbm: list[float] = []
        self.raw_tbm: list[float] = []
        self.per_schema: list[dict[str, Any]] = []

    def warm_up(self) -> None:
        """Pay one-time costs (imports, thread pool) before timing anything."""
        self._raw_compile({"type": "object"})
        self.compiler.compile(*normalise({"type": "integer"}, SchemaOptions.faithful()))
        make_validator({"type": "object"})({})

    def run(self, rows, show_progress: bool = True) -> None:
        self.warm_up()
        for row in tqdm(rows, desc="schemas", unit="schema", disable=not show_progress):
            self.one(row)

    def _raw_compile(self, schema):
        import llguidance

        t0 = time.perf_counter()
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
            m = run_with_timeout(lambda: llguidance.LLMatcher(self.tok.ll, grammar, log_level=0), self.timeout_s,
                                 "raw compile")
        except CompileTimeout:
            return None, "timeout", time.perf_counter() - t0
        except (ValueError, TypeError) as exc:
            return None, f"error: {exc}", time.perf_counter() - t0
        dt = time.perf_counter() - t0
        return (None, "error: " + m.get_error(), dt) if m.is_error() else (m, "ok", dt)

    def one(self, row: dict[str, Any]) -> None:
        schema, tests = row["schema"], row.get("tests", [])
        c, r = self.counts, self.raw
        c["schemas"] += 1
        raw_matcher, raw_status, raw_dt = self._raw_compile(schema)
        r["compiled" if raw_status == "ok" else ("timeout" if raw_status == "timeout" else "compile_error")] += 1
        if raw_status == "ok":
            self.raw_ttfm.append(raw_dt)
        t0 = time.perf_counter()
        status, compiled, validator = "ok", None, None
        try:
            norm, report = normalise(schema, SchemaOptions.faithful())
            compiled = self.compiler.compile(norm, report)
            validator = make_validator(schema)
        except CompileTimeout:
            status = "timeout"
        except CompilerError as exc:
            status = "refused"
            self.reasons[str(exc).split(":")[0][:80]] += 1
        dt = time.perf_counter() - t0
        entry = {"name": row.get("name"), "split": row.get("split"), "status": status, "raw": raw_status[:200],
                 "compile_ms": 1000 * dt, "raw_compile_ms": 1000 * raw_dt}
        if status == "ok":
            c["compiled"] += 1
            c["exact" if compiled.report.exact else "relaxed"] += 1
            self.ttfm.append(dt)
            entry["post_validated"] = sorted({k for k, _, _ in compiled.report.post_validated})
        else:
            c[status] += 1
        self.per_schema.append(entry)
        forced = [([self.tok.hf.encode(text, add_special_tokens=False) for text in candidates(t["data"], schema)],
                   bool(t["valid"])) for t in tests]
        if self.xgrammar is not None and (c["schemas"] - 1) % self.xgrammar_every == 0:
            self.xgrammar.counts["schemas"] += 1
            self.xgrammar.submit(schema, forced)
        for test, (variants, _) in zip(tests, forced):
            valid = bool(test["valid"])
            kind = "valid" if valid else "invalid"
            if raw_status == "ok":
                r[f"{kind}_instances"] += 1
                ok = any(force_tokens(raw_matcher.deep_copy(), tokens, self.bitmask, self.raw_tbm if valid else None)
                         for tokens in variants) or (valid and self.order_search.accepts(raw_matcher, test["data"],
                                                                                         schema))
                r["valid_rejected" if valid and not ok else "invalid_accepted" if ok and not valid else "agree"] += 1
            if status != "ok":
                continue
            c[f"{kind}_instances"] += 1
            # a valid instance the guessed key orders miss is searched for in the grammar's own order
            grammar_ok = any(force_tokens(compiled.matcher(), tokens, self.bitmask, self.tbm if valid else None)
                             for tokens in variants) or (valid and self.order_search.accepts(compiled.matcher(),
                                                                                             test["data"], schema))
            program_ok = grammar_ok and validator(test["data"])
            if valid and not program_ok:
                c["valid_rejected"] += 1
                c["valid_rejected_by_grammar" if not grammar_ok else "valid_rejected_by_validator"] += 1
            if not valid and program_ok:
                c["invalid_accepted"] += 1
            if not valid and grammar_ok:
                c["invalid_accepted_by_grammar_alone"] += 1

    def summary(self) -> dict[str, Any]:
        pct = lambda xs, q, scale: float(np.percentile(np.asarray(xs) * scale, q)) if xs else None  # noqa: E731
        c, r = self.counts, self.raw
        keys = ("schemas", "compiled", "exact", "relaxed", "refused", "timeout", "valid_instances", "valid_rejected",
                "valid_rejected_by_grammar", "valid_rejected_by_validator", "invalid_instances", "invalid_accepted",
                "invalid_accepted_by_grammar_alone")
        out: dict[str, Any] = {k: int(c.get(k, 0)) for k in keys}
        out["passing"] = out["compiled"]
        out["compile_ms"] = {"p50": pct(self.ttfm, 50, 1e3), "p99": pct(self.ttfm, 99, 1e3)}
        out["mask_us"] = {"p50": pct(self.tbm, 50, 1e6), "p99": pct(self.tbm, 99, 1e6)}
        out["raw_llguidance"] = {
            **{k: int(r.get(k, 0)) for k in ("compiled", "compile_error", "timeout", "valid_instances",
                                            "valid_rejected", "invalid_instances", "invalid_accepted")},
            "compile_ms": {"p50": pct(self.raw_ttfm, 50, 1e3), "p99": pct(self.raw_ttfm, 99, 1e3)},
            "mask_us": {"p50": pct(self.raw_tbm, 50, 1e6), "p99": pct(self.raw_tbm, 99, 1e6)},
        }
        if self.xgrammar is not None:
            self.xgrammar.close()
            out["raw_xgrammar"] = self.xgrammar.summary()
            out["xgrammar_every"] = self.xgrammar_every
        out["refusal_reasons"] = dict(self.reasons.most_common(20))
        both = [(e["compile_ms"], e["raw_compile_ms"]) for e in self.per_schema
                if e["status"] == "ok" and e["raw"] == "ok"]
        if both:
            ours, raw_ms = np.asarray(both).T
            out["compile_ratio_vs_raw_same_schemas"] = {
                "schemas": len(both), "p50": float(np.percentile(ours, 50) / np.percentile(raw_ms, 50)),
                "p99": float(np.percentile(ours, 99) / np.percentile(raw_ms, 99))}
        if out["compile_ms"]["p50"] and out["raw_llguidance"]["compile_ms"]["p50"]:
            out["compile_ratio_vs_raw"] = {q: out["compile_ms"][q] / out["raw_llguidance"]["compile_ms"][q]
                                           for q in ("p50", "p99")}
        return out


PUBLISHED = {  # ../shared/datasets/README.md: MaskBench, one CPU thread, 11,306 schemas
    "LLGuidance 0.7.10": {"passing": 8909, "compile_error": 2377, "valid_rejected": 20, "invalid_accepted": 0,
                          "compile_ms": (1.037, 17.988), "mask_us": (46, 533)},
    "XGrammar 0.1.17": {"passing": 8122, "compile_error": 90, "valid_rejected": 1408, "invalid_accepted": 1368,
                        "compile_ms": (919.459, 900000.0), "mask_us": (9, 5687)},
    "llama.cpp": {"passing": 6505, "compile_error": 1301, "valid_rejected": 2850, "invalid_accepted": 649,
                  "compile_ms": (0.312, 28.558), "mask_us": (17021, 60371)},
    "Outlines-core 0.2.3": {"passing": 7050, "compile_error": 1773, "valid_rejected": 1415, "invalid_accepted": 822,
                            "compile_ms": (587.9, 413111.222), "mask_us": (34, 7184)},
}


def write_results(summary: dict[str, Any], per_schema: list[dict[str, Any]], out_dir: Path, name: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    with gzip.open(out_dir / f"{name}-per-schema.jsonl.gz", "wt", encoding="utf-8") as fh:
        for row in per_schema:
            fh.write(json.dumps(row) + "\n")
    f = lambda x: "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)  # noqa: E731
    raw = summary["raw_llguidance"]
    rows = [
        ("openfirst compile stage (grammar + validation)", summary["compiled"], summary["refused"] + summary["timeout"],
         summary["valid_rejected"], summary["invalid_accepted"], summary["compile_ms"]["p50"],
         summary["compile_ms"]["p99"], summary["mask_us"]["p50"], summary["mask_us"]["p99"]),
        ("raw llguidance, same run (grammar alone)", raw["compiled"], raw["compile_error"] + raw["timeout"],
         raw["valid_rejected"], raw["invalid_accepted"], raw["compile_ms"]["p50"], raw["compile_ms"]["p99"],
         raw["mask_us"]["p50"], raw["mask_us"]["p99"]),
    ]
    if "raw_xgrammar" in summary:
        x = summary["raw_xgrammar"]
        label = f"raw XGrammar, same run, every {summary['xgrammar_every']}th schema ({x['schemas']})"
        rows.append((label, x["compiled"], x["compile_error"] + x["timeout"] + x["crash"],
                     x["valid_rejected"], x["invalid_accepted"], x["compile_ms"]["p50"], x["compile_ms"]["p99"],
                     x["mask_us"]["p50"], x["mask_us"]["p99"]))
    for label, p in PUBLISHED.items():
        rows.append((f"{label} (published)", p["passing"], p["compile_error"], p["valid_rejected"],
                     p["invalid_accepted"], p["compile_ms"][0], p["compile_ms"][1], p["mask_us"][0], p["mask_us"][1]))
    md = [
        f"### MaskBench: {summary['schemas']} schemas, SmolLM2 tokenizer",
        "",
        f"Compiled {summary['compiled']} ({summary['exact']} exactly by the grammar, {summary['relaxed']} with "
        f"relaxations enforced by validation); refused {summary['refused']}, timed out {summary['timeout']}. "
        f"Valid instances {summary['valid_instances']}, rejected {summary['valid_rejected']}; invalid instances "
        f"{summary['invalid_instances']}, accepted by the full program {summary['invalid_accepted']} "
        f"(by the grammar alone {summary['invalid_accepted_by_grammar_alone']}).",
        "",
        "| system | compiled | compile error/timeout | valid rejected | invalid accepted | compile p50 ms | "
        "compile p99 ms | mask p50 µs | mask p99 µs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    md += ["| " + " | ".join(f(x) for x in r) + " |" for r in rows]
    if "compile_ratio_vs_raw" in summary:
        r = summary["compile_ratio_vs_raw"]
        md += ["", f"Compile stage / raw llguidance (same run, each over the schemas it compiled): "
               f"p50 {r['p50']:.2f}x, p99 {r['p99']:.2f}x."]
    if "compile_ratio_vs_raw_same_schemas" in summary:
        r = summary["compile_ratio_vs_raw_same_schemas"]
        md += [f"On the {r['schemas']} schemas both compiled: p50 {r['p50']:.2f}x, p99 {r['p99']:.2f}x "
               "(the rest need relaxation rounds that raw llguidance never attempts)."]
    md += ["", "Published rows ran on 11,306 schemas with one CPU thread and their own tokenizer (Llama-3); "
           "compare counts as shares."]
    text = "\n".join(md) + "\n"
    (out_dir / f"{name}.md").write_text(text)
    return text
