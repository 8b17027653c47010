"""`openfirst bench extraction snips`: the local model on SNIPS slot filling, every escalation policy's accuracy
against frontier share, confidence AUROC, and the local model's slot F1 beside the published NLU engines.

The local model is the embedded SmolLM2-135M-Instruct on in-process llama.cpp (the fastest engine here for one
request at a time, and it reuses the cached prompt prefix: fixed examples are a shared prefix), greedy, with k
training utterances as in-context examples: fixed (chosen once per intent to cover the most slots) or similar
(the k nearest training utterances by MiniLM embedding, per input). The frontier is the gold annotation (a perfect
frontier, said so in the results); `--frontier-accuracy p` models an imperfect one (a share 1 - p of its answers
lose one gold slot, seeded). Per-utterance local records are cached on disk (`$OPENFIRST_CACHE/snips/`), so a
rerun of the analysis does not rerun the model (`--fresh` does).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from openfirst.cascade import evaluation as ev
from openfirst.cascade.snips import (INTENTS, PUBLISHED, IntentData, SlotCounts, all_right, covering_examples,
                                     example_pairs, load, predicted_slots, slot_model, span_task)
from openfirst.compiler.confidence import AGGREGATIONS, LENGTH_FREE, confidence
from openfirst.core.paths import cache_dir

# GPT-4o list prices (USD per million tokens), for the frontier's cost per utterance
FRONTIER_PRICE = (2.50, 10.00)
RECORDS_VERSION = 2  # 2: slot values constrained to word spans of the utterance


def _records_path(mode: str, k: int, limit: int | None) -> Path:
    key = hashlib.sha256(json.dumps([RECORDS_VERSION, mode, k, limit, "llama.cpp", "smollm2"]).encode()).hexdigest()
    return cache_dir("snips") / f"records-{mode}-k{k}-{limit or 'all'}-{key[:10]}.jsonl"


def run_local(data: Sequence[IntentData], mode: str, k: int, limit: int | None, backend: Any, embed: Any,
              progress: bool = True, extractive: bool = True, prompt: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
    """Run the local model on the validate utterances; one record per utterance. `mode`: fixed or similar examples,
    or none (a tuned model). `prompt`: ProgramOptions' prompt (and decode) settings (default: the raw JSON Schema,
    the prompt the published results were measured with, and no repetition penalty)."""
    from tqdm.auto import tqdm

    from openfirst.compiler.grammar import GrammarCompiler
    from openfirst.compiler.program import UNGUARDED, Program, ProgramOptions, Result
    from openfirst.compiler.task import compile_task

    # the leak guard is moot here: the span grammar only allows the utterance's own words
    opts = ProgramOptions(**{"max_tokens": 120, "max_retries": 1, "repetition_penalty": 1.0, **(prompt or UNGUARDED)})
    compiler = GrammarCompiler(backend.tokenizer_info()) if backend.constraint == "grammar" else None
    records = []
    total = sum(len(d.validate[:limit]) for d in data)
    bar = tqdm(total=total, desc=f"SNIPS local ({mode} examples)", unit="utt", disable=not progress)
    for d in data:
        model = slot_model(d)
        utterances = d.validate[:limit]
        if mode == "none":  # a tuned model: no examples in its prompt
            shots = [[]] * len(utterances)
        elif mode == "fixed":
            shots = [covering_examples(d.train, k)] * len(utterances)
        else:
            train_emb, query_emb = embed([u.text for u in d.train]), embed([u.text for u in utterances])
            sims = query_emb @ train_emb.T
            shots = [[d.train[j] for j in np.argsort(-row, kind="stable")[:k]] for row in sims]
        for u, examples in zip(utterances, shots):
            task = compile_task(model, examples=example_pairs(examples))
            if extractive:
                task = span_task(task, u.text)
            program = Program(task, backend, opts, compiler=compiler)
            t0 = time.perf_counter()
            r = program.run_many([u.text])[0]
            seconds = time.perf_counter() - t0
            pred = predicted_slots(r.output) if isinstance(r, Result) else {}
            records.append({
                "intent": d.intent, "text": u.text, "gold": u.gold(), "predicted": pred, "valid": isinstance(r, Result),
                "error": None if isinstance(r, Result) else type(r.error).__name__,
                "all_right": isinstance(r, Result) and all_right(pred, u.gold()),
                "output": r.text if isinstance(r, Result) else None,
                "token_texts": r.token_texts if isinstance(r, Result) else None,
                "token_logprobs": r.token_logprobs if isinstance(r, Result) else None,
                "seconds": seconds, "prompt_tokens": r.usage.get("prompt_tokens", 0),
                "completion_tokens": r.usage.get("completion_tokens", 0)})
            bar.update(1)
    bar.close()
    return records


def local_records(data, mode: str, k: int, limit: int | None, fresh: bool, backend_factory, embed,
                  progress: bool) -> list[dict[str, Any]]:
    path = _records_path(mode, k, limit)
    if path.exists() and not fresh:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = run_local(data, mode, k, limit, backend_factory(), embed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)
    return records


def frontier_outcomes(records: list[dict], accuracy: float, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """(all-right per utterance, predicted slots) of the modelled frontier: gold, minus one slot for 1 - accuracy."""
    rng = np.random.default_rng(seed)
    right, preds = [], []
    for r in records:
        gold = {s: v[0] for s, v in r["gold"].items()}
        if gold and rng.random() >= accuracy:
            gold.pop(sorted(gold)[int(rng.integers(len(gold)))])
        preds.append(gold)
        right.append(all_right(gold, r["gold"]))
    return np.asarray(right, dtype=float), preds


def confidences(records: list[dict], how: str) -> tuple[np.ndarray, list[dict[str, float]]]:
    overall, fields = [], []
    for r in records:
        c = confidence(r["output"], r["token_texts"], r["token_logprobs"], how) if r["valid"] else None
        overall.append(c.overall if c else 0.0)
        fields.append(c.fields if c else {})
    return np.asarray(overall), fields


def slot_f1(records: list[dict]) -> dict[str, Any]:
    per_intent = {}
    for intent in INTENTS:
        counts = SlotCounts.empty()
        rows = [r for r in records if r["intent"] == intent]
        if not rows:
            continue
        for r in rows:
            counts.add(r["predicted"], r["gold"])
        per_intent[intent] = {"macro_f1": counts.macro_f1(), **counts.micro(), "utterances": len(rows)}
    macro = float(np.mean([v["macro_f1"] for v in per_intent.values()]))
    return {"macro": macro, "per_intent": per_intent}


def analyse(records: list[dict], embeddings: np.ndarray, frontier_accuracy: float, seed: int = 0) -> dict[str, Any]:
    y_local = np.asarray([r["all_right"] for r in records], dtype=float)
    y_front, _ = frontier_outcomes(records, frontier_accuracy, seed)
    invalid = np.asarray([not r["valid"] for r in records])
    aurocs, field_aurocs = {}, {}
    for how in AGGREGATIONS:
        conf, fields = confidences(records, how)
        aurocs[how] = ev.auroc(conf, y_local)
        scores, labels = [], []
        for r, f in zip(records, fields):
            for path, c in f.items():
                scores.append(c)
                labels.append(r["predicted"].get(path) in r["gold"].get(path, []))
        field_aurocs[how] = ev.auroc(scores, labels)
    # kept: the best length-free aggregation (product is measured as the contrast, never kept)
    best = max(LENGTH_FREE, key=lambda h: -1 if np.isnan(aurocs[h]) else aurocs[h])
    conf, _ = confidences(records, best)
    texts = [r["text"] for r in records]
    fit = ev.cross_fit(embeddings, texts, y_local.astype(int), conf, invalid, seed=seed)
    prio = ev.priorities(fit, conf, invalid)
    curves = ev.curves(prio, y_local, y_front)
    secs = np.asarray([r["seconds"] for r in records])
    front_cost = np.asarray([(r["prompt_tokens"] * FRONTIER_PRICE[0] + 60 * FRONTIER_PRICE[1]) / 1e6
                             for r in records])  # its prompt, and about 60 output tokens of JSON
    policies = {}
    for name, curve in curves.items():
        row: dict[str, Any] = {"apgr": curve.apgr()}
        for x in (0.5, 0.8):
            share = curve.cpt(x)
            key = f"cpt_{int(x * 100)}"
            row[key] = share
            if not np.isnan(share):
                ran = ev.local_run_share(name, fit, prio[name], share)
                row[f"{key}_cost_per_utterance_usd"] = share * float(front_cost.mean())
                row[f"{key}_local_seconds_per_utterance"] = ran * float(secs.mean())
        row["curve"] = {"share": curve.share.tolist(), "accuracy": curve.accuracy.tolist()}
        policies[name] = row
    policies["random"] = {"apgr": 0.5, "cpt_50": 0.5, "cpt_80": 0.8}
    oracle = ev.curves({"oracle": 1.0 - y_local}, y_local, y_front)["oracle"]  # knows each local outcome
    policies["oracle"] = {"apgr": oracle.apgr(), "cpt_50": oracle.cpt(0.5), "cpt_80": oracle.cpt(0.8)}
    return {"utterances": len(records), "local_accuracy": float(y_local.mean()),
            "frontier_accuracy": float(y_front.mean()), "valid_share": float(1 - invalid.mean()),
            "auroc_by_aggregation": aurocs, "field_auroc_by_aggregation": field_aurocs, "aggregation": best,
            "auroc_confidence": aurocs[best], "auroc_router": ev.auroc(-fit.router, y_local),
            "router_skip_share": float(fit.skip.mean()), "policies": policies,
            "local_seconds_per_utterance": float(secs.mean()),
            "frontier_cost_per_utterance_usd": float(front_cost.mean())}


def run(data_dir: Path, modes: Sequence[str], k: int, limit: int | None, frontier_accuracy: float, fresh: bool,
        progress: bool = True) -> dict[str, Any]:
    from openfirst.pipeline.models import build_local
    from openfirst.router.embeddings import DEFAULT_MODEL, Embedder

    data = load(data_dir)
    embedder = Embedder(DEFAULT_MODEL, show_progress=False)
    embed = lambda texts: embedder.encode(list(texts))  # noqa: E731 - L2-normalised already
    backend: list[Any] = []

    def factory():
        if not backend:
            backend.append(build_local("llama.cpp"))
        return backend[0]

    t0 = time.perf_counter()
    out: dict[str, Any] = {"benchmark": "snips", "k_examples": k, "limit_per_intent": limit,
                           "frontier": "gold annotation (a perfect frontier)" if frontier_accuracy >= 1 else
                           f"gold annotation with one slot dropped from {1 - frontier_accuracy:.0%} of answers",
                           "local_model": "SmolLM2-135M-Instruct Q4_1, llama.cpp in process, greedy", "modes": {}}
    for mode in modes:
        records = local_records(data, mode, k, limit, fresh, factory, embed, progress)
        emb = embed([r["text"] for r in records])
        out["modes"][mode] = {"slot_f1": slot_f1(records), **analyse(records, emb, frontier_accuracy)}
    primary = max(out["modes"], key=lambda m: out["modes"][m]["slot_f1"]["macro"])
    m = out["modes"][primary]
    out.update({"examples": primary, "slot_f1": m["slot_f1"]["macro"], "slot_f1_per_intent":
                {i: v["macro_f1"] for i, v in m["slot_f1"]["per_intent"].items()},
                "apgr_router": m["policies"]["router"]["apgr"], "apgr_cascade": m["policies"]["cascade"]["apgr"],
                "apgr_cascade_routing": m["policies"]["cascade_routing"]["apgr"],
                "auroc_confidence": m["auroc_confidence"], "published_macro_f1": {
                    name: float(np.mean(v)) for name, v in PUBLISHED.items()},
                "published_per_intent": {name: dict(zip(INTENTS, v)) for name, v in PUBLISHED.items()},
                "seconds": time.perf_counter() - t0})
    if backend:
        backend[0].close()
    return out


def markdown(out: dict[str, Any]) -> str:
    m = out["modes"][out["examples"]]
    lines = [f"# SNIPS slot filling: escalation policies (local: {out['local_model']})", "",
             f"Frontier: {out['frontier']}. {m['utterances']} validate utterances, {out['k_examples']} in-context "
             f"examples ({out['examples']}: the better of {', '.join(out['modes'])}). Quality = the utterance's "
             "slots all right (exact match). Learned parts are cross-fitted (nested 5-fold).", "",
             "## Slot F1 (exact match, macro over slots) beside the published engines (70 training utterances)", "",
             "| system | " + " | ".join(INTENTS) + " | mean |", "|---" * (len(INTENTS) + 2) + "|"]
    for mode, res in out["modes"].items():
        per = res["slot_f1"]["per_intent"]
        lines.append(f"| SmolLM2-135M, {mode} examples | " + " | ".join(
            f"{per[i]['macro_f1']:.2f}" if i in per else "-" for i in INTENTS) + f" | {res['slot_f1']['macro']:.2f} |")
    for name, vals in PUBLISHED.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} |")
    lines += ["", "## Accuracy against frontier share", "",
              "| policy | APGR | CPT(50%) | CPT(80%) | cost/utt at CPT(80%) | local s/utt at CPT(80%) |",
              "|---|---|---|---|---|---|"]
    for name in ("random", "router", "cascade", "cascade_routing", "oracle"):
        p = m["policies"][name]
        cost = p.get("cpt_80_cost_per_utterance_usd")
        local = p.get("cpt_80_local_seconds_per_utterance")
        lines.append(f"| {name} | {p['apgr']:.3f} | {_pct(p['cpt_50'])} | {_pct(p['cpt_80'])} | "
                     f"{'-' if cost is None else f'${cost * 1000:.3f}/1k'} | {'-' if local is None else f'{local:.2f}'} |")
    lines += ["", f"Local model alone: {m['local_accuracy']:.1%} of utterances all right, {m['valid_share']:.1%} "
              f"schema-valid, {m['local_seconds_per_utterance']:.2f} s per utterance on 2 CPU cores; frontier "
              f"{m['frontier_accuracy']:.1%} at about ${m['frontier_cost_per_utterance_usd'] * 1000:.2f} per 1,000 "
              "utterances (GPT-4o prices).", "",
              "Confidence AUROC (utterance all right) by aggregation: " + ", ".join(
                  f"{h} {v:.3f}" for h, v in m["auroc_by_aggregation"].items()) + f"; kept: **{m['aggregation']}** (the "
              "best length-free one; product penalises long values and is the contrast). "
              "Per field (a written slot is right): " + ", ".join(
                  f"{h} {v:.3f}" for h, v in m["field_auroc_by_aggregation"].items()) +
              f". The pre-hoc router's AUROC: {m['auroc_router']:.3f}; cascade routing skipped the local run on "
              f"{m['router_skip_share']:.1%} of utterances. The oracle (it knows which local answers are right) "
              "bounds every policy: at this local accuracy no policy's APGR can exceed "
              f"{m['policies']['oracle']['apgr']:.3f}.", "",
              f"Command: `openfirst bench extraction snips`; {out['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return "never" if x is None or np.isnan(x) else f"{x:.1%}"


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = out["modes"][out["examples"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, style in (("router", "tab:orange"), ("cascade", "tab:blue"), ("cascade_routing", "tab:green")):
        c = m["policies"][name]["curve"]
        a.plot(c["share"], c["accuracy"], color=style, label=f"{name} (APGR {m['policies'][name]['apgr']:.2f})")
    a.plot([0, 1], [m["local_accuracy"], m["frontier_accuracy"]], "k--", lw=1, label="random (APGR 0.50)")
    a.set_xlabel("share of utterances sent to the frontier")
    a.set_ylabel("utterances with every slot right")
    a.set_title("SNIPS: accuracy against frontier share")
    a.legend(fontsize=8)
    names = [f"SmolLM2 ({mode})" for mode in out["modes"]] + list(PUBLISHED)
    values = [res["slot_f1"]["macro"] for res in out["modes"].values()] + [float(np.mean(v))
                                                                           for v in PUBLISHED.values()]
    b.barh(range(len(names)), values, color=["tab:blue"] * len(out["modes"]) + ["tab:gray"] * len(PUBLISHED))
    b.set_yticks(range(len(names)), names, fontsize=8)
    b.invert_yaxis()
    b.set_xlabel("macro slot F1 (mean over the 7 intents)")
    b.set_title("Local model vs published NLU engines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
