"""`openfirst bench finetune snips`: the embedded model LoRA-tuned on SNIPS at each training size, beside the base
model with retrieved examples (`bench extraction snips`) and the published NLU engines; the cascade re-learnt on the
tuned model's outcomes (cross-fitted, as `bench extraction` does); and a distillation replay through the service.

Local runs are llama.cpp in process, greedy, slot values constrained to word spans of the utterance, as in
`bench extraction snips`; the tuned model runs its GGUF with the prompt it was trained on (no examples). The frontier
is the gold annotation (a perfect frontier, said so in the results); `--frontier-accuracy p` models an imperfect one.
Tuned models and their records are cached under `--work-dir` (default `$OPENFIRST_CACHE/finetune-bench/`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from openfirst.cascade.snips import INTENTS, PUBLISHED, all_right, predicted_slots
from openfirst.compiler.backends.base import AsyncBackend, Generation, RequestBackend
from openfirst.core.paths import cache_dir

TUNED_PROMPT = {"schema_in_prompt": "none", "examples_in_prompt": "turns", "leak_guard": False}
SNIPS_FULL = 0.916  # Snips NLU trained on the full training files (its Snips_metrics_full.json)
BENCH_VERSION = 1


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def epochs_for(per_intent: int | None, epochs: int | None) -> int:
    """The number of passes: as given, else 3 up to 100 utterances per intent and 1 beyond (about as many steps)."""
    if epochs is not None:
        return epochs
    return 3 if per_intent is not None and per_intent <= 100 else 1


def ensure_tuned(data_dir: Path, per_intent: int | None, epochs: int, work: Path, fresh: bool, progress: bool):
    from openfirst.finetune.artifact import is_tuned_model, load_card
    from openfirst.finetune.examples import read_snips
    from openfirst.finetune.prompt import TunedPrompt
    from openfirst.finetune.run import finetune
    from openfirst.finetune.train import TrainConfig

    out = work / f"snips-{per_intent or 'full'}-e{epochs}-v{BENCH_VERSION}"
    if is_tuned_model(out) and not fresh:
        return load_card(out)
    data = read_snips("snips", per_intent, data_dir)
    return finetune(data, out, config=TrainConfig(epochs=epochs), prompt=TunedPrompt("none"), held_out_share=0.0,
                    sources=[f"snips, first {per_intent or 'all'} training utterances per intent"], progress=progress)


def tuned_records(tuned, data, limit: int | None, fresh: bool, progress: bool) -> list[dict]:
    from openfirst.cascade.bench import run_local
    from openfirst.pipeline.models import build_local

    path = tuned.path.parent / f"{tuned.path.name}.records-{limit or 'all'}.jsonl"
    if path.exists() and not fresh:
        return _jsonl(path)
    backend = build_local("llama.cpp", tuned.gguf)
    try:
        records = run_local(data, "none", 0, limit, backend, None, progress, prompt=TUNED_PROMPT)
    finally:
        backend.close()
    _write_jsonl(path, records)
    return records


def compare_gguf_types(tuned, data, records: list[dict], fresh: bool, per_intent: int = 20,
                       types: Sequence[str] = ("Q4_1", "F16")) -> dict[str, Any]:
    """Slot F1 of the tuned model's GGUF at other types than its own, on the first `per_intent` validate utterances
    of each intent (its own type's figure from `records`, on the same utterances)."""
    from openfirst.cascade.bench import run_local, slot_f1
    from openfirst.pipeline.models import build_local
    from openfirst.finetune.gguf_export import export_gguf

    own = tuned.card["gguf"]["type"]
    first = [r for d in data for r in [x for x in records if x["intent"] == d.intent][:per_intent]]
    out = {own: {"slot_f1": slot_f1(first)["macro"], "all_right": float(np.mean([r["all_right"] for r in first]))}}
    for t in types:
        path = tuned.path.parent / f"{tuned.path.name}.{t}.gguf"
        if fresh or not path.exists():
            export_gguf(tuned.merged, path, t, tuned.card["gguf"]["pre_tokenizer"])
        backend = build_local("llama.cpp", path)
        try:
            recs = run_local(data, "none", 0, per_intent, backend, None, False, prompt=TUNED_PROMPT)
        finally:
            backend.close()
        out[t] = {"slot_f1": slot_f1(recs)["macro"], "all_right": float(np.mean([r["all_right"] for r in recs])),
                  "bytes": path.stat().st_size}
    out[own]["bytes"] = tuned.gguf.stat().st_size
    return {"utterances_per_intent": per_intent, "by_type": out}


def at_quality(policy: dict, frontier_accuracy: float, quality: float = 0.95) -> float | None:
    """The smallest frontier share at which the policy's accuracy reaches `quality` x the frontier's."""
    share, acc = np.asarray(policy["curve"]["share"]), np.asarray(policy["curve"]["accuracy"])
    ok = np.nonzero(acc >= quality * frontier_accuracy - 1e-12)[0]
    return float(share[ok[0]]) if len(ok) else None


def summary(records: list[dict], emb: np.ndarray, frontier_accuracy: float,
            frontier_cost: float | None = None) -> dict[str, Any]:
    """Slot F1, local accuracy and the cascade of one model's records. `frontier_cost`: USD per utterance at the
    frontier (default: priced on these records' prompts; the tuned model's prompts are shorter than the frontier's,
    so its rows are priced with the base model's)."""
    from openfirst.cascade.bench import analyse, slot_f1

    a = analyse(records, emb, frontier_accuracy)
    if frontier_cost is not None:
        a["frontier_cost_per_utterance_usd"] = frontier_cost
    cascade = a["policies"]["cascade"]
    share95 = at_quality(cascade, a["frontier_accuracy"])
    return {"slot_f1": slot_f1(records), "all_right": a["local_accuracy"], "valid_share": a["valid_share"],
            "local_seconds_per_utterance": a["local_seconds_per_utterance"], "auroc_confidence": a["auroc_confidence"],
            "cascade": {k: cascade[k] for k in ("apgr", "cpt_50", "cpt_80")},
            "cascade_curve": cascade["curve"], "oracle": a["policies"]["oracle"],
            "at_95pct_frontier_quality": {
                "frontier_share": share95, "cost_per_utterance_usd":
                    None if share95 is None else share95 * a["frontier_cost_per_utterance_usd"]},
            "frontier_accuracy": a["frontier_accuracy"],
            "frontier_cost_per_utterance_usd": a["frontier_cost_per_utterance_usd"]}


def run(data_dir: Path, sizes: Sequence[int | None], limit: int | None, epochs: int | None, distill: int,
        frontier_accuracy: float, work_dir: Path | None, fresh: bool, progress: bool = True,
        replay_limit: int | None = 30, cascade_threshold: float = 0.6) -> dict[str, Any]:
    from openfirst.cascade.bench import local_records
    from openfirst.cascade.snips import load
    from openfirst.pipeline.models import build_local
    from openfirst.core.machine import this_cpu
    from openfirst.router.embeddings import DEFAULT_MODEL, Embedder

    t0 = time.perf_counter()
    work = work_dir or cache_dir("finetune-bench")
    work.mkdir(parents=True, exist_ok=True)
    data = load(data_dir)
    embedder = Embedder(DEFAULT_MODEL, show_progress=False)
    embed = lambda texts: embedder.encode(list(texts))  # noqa: E731
    base_backend: list[Any] = []

    def factory():
        if not base_backend:
            base_backend.append(build_local("llama.cpp"))
        return base_backend[0]

    base = local_records(data, "similar", 5, limit, False, factory, embed, progress)
    emb = embed([r["text"] for r in base])
    out: dict[str, Any] = {
        "benchmark": "finetune-snips", "cpu": this_cpu().model, "limit_per_intent": limit,
        "frontier": "gold annotation (a perfect frontier)" if frontier_accuracy >= 1 else
        f"gold annotation with one slot dropped from {1 - frontier_accuracy:.0%} of answers",
        "local_model": "SmolLM2-135M-Instruct Q4_1, llama.cpp in process, greedy, span-constrained",
        "base": {"prompt": "5 similar training utterances as examples (bench extraction snips)",
                 **summary(base, emb, frontier_accuracy)},
        "tuned": {}, "published_macro_f1_at_70": {k: float(np.mean(v)) for k, v in PUBLISHED.items()},
        "published_per_intent_at_70": {k: dict(zip(INTENTS, v)) for k, v in PUBLISHED.items()},
        "snips_nlu_full": SNIPS_FULL}
    for n in sizes:
        e = epochs_for(n, epochs)
        tuned = ensure_tuned(data_dir, n, e, work, fresh, progress)
        records = tuned_records(tuned, data, limit, fresh, progress)
        t = tuned.card["training"]
        out["tuned"][str(n or "full")] = {
            "examples": tuned.card["data"]["train"], "epochs": e, "train_seconds": t["seconds"],
            "train_tokens_per_s": t["tokens_per_s"], "peak_memory_gib": t["peak_memory_gib"], "dtype": t["dtype"],
            "threads": t["threads"], "export_seconds": tuned.card.get("export_seconds"),
            "loss_first": t["loss_first"], "loss_last": t["loss_last"], "model": str(tuned.path),
            **summary(records, emb, frontier_accuracy, out["base"]["frontier_cost_per_utterance_usd"])}
        if len(out["tuned"]) == 1:
            out["gguf_types"] = compare_gguf_types(tuned, data, records, fresh, min(20, limit or 20))
    if base_backend:
        base_backend[0].close()
    if distill:
        out["distillation"] = distill_replay(data_dir, distill, epochs_for(distill, epochs), frontier_accuracy,
                                             cascade_threshold, replay_limit, work, fresh, progress)
    out["slot_f1_base"] = out["base"]["slot_f1"]["macro"]
    out["slot_f1_tuned"] = {k: v["slot_f1"]["macro"] for k, v in out["tuned"].items()}
    out["cpt80_cascade_base"] = out["base"]["cascade"]["cpt_80"]
    out["cpt80_cascade_tuned"] = {k: v["cascade"]["cpt_80"] for k, v in out["tuned"].items()}
    out["train_seconds"] = {k: v["train_seconds"] for k, v in out["tuned"].items()}
    out["seconds"] = time.perf_counter() - t0
    return out


# -- distillation replay through the service ---------------------------------------------------------------
class GoldFrontier(RequestBackend, AsyncBackend):
    """The modelled frontier for the replay (a stand-in, not a model): answers each SNIPS utterance with its gold
    annotation; with `accuracy` < 1 a seeded share of answers loses one gold slot."""

    name, model_name, price = "gold-frontier", "gold-annotation", None

    def __init__(self, gold: dict[str, dict[str, str]], accuracy: float = 1.0, seed: int = 0):
        self.gold, self.accuracy, self.seed = gold, accuracy, seed

    def constraint_for(self, task: Any) -> dict[str, Any]:
        return {"schema": task.schema}

    def generate(self, conversations, constraint, max_tokens, temperature=0.0, repetition_penalty=1.0):
        out = []
        for conv in conversations:
            text = [m["content"] for m in conv if m["role"] == "user"][-1]
            answer = dict(self.gold.get(text, {}))
            rng = random.Random(f"{self.seed}:{text}")
            if answer and rng.random() >= self.accuracy:
                answer.pop(sorted(answer)[rng.randrange(len(answer))])
            out.append(Generation(json.dumps(answer, separators=(",", ":")), 50, 20, True, model=self.model_name))
        return out

    async def agenerate(self, conversations, constraint, max_tokens, temperature=0.0, repetition_penalty=1.0):
        return self.generate(conversations, constraint, max_tokens, temperature, repetition_penalty)


def _service(local_model: str, backend: Any, tasks: dict, frontier: Any, threshold: float, log_path: Path | None):
    from openfirst.compiler.backends.threaded import ThreadedBackend
    from openfirst.service.config import ServiceConfig
    from openfirst.service.decision_log import DecisionLog
    from openfirst.service.service import Service

    config = ServiceConfig(local={"kind": "llamacpp", "model": local_model, "isolate": False},
                           routing={"cascade_threshold": threshold})
    log = DecisionLog(log_path) if log_path is not None else None
    from openfirst.pipeline import ModelRegistry

    return Service(config, tasks, ModelRegistry.of(ThreadedBackend(backend), frontier), None, log)


def replay(service: Any, utterances: Sequence[Any], progress: bool, desc: str) -> dict[str, Any]:
    """Send utterances through the service, one request each; frontier share and utterances all right."""
    from tqdm.auto import tqdm

    from openfirst.pipeline import Item

    right, frontier, bar = [], [], tqdm(total=len(utterances), desc=desc, unit="utt", disable=not progress)
    for u in utterances:
        body = asyncio.run(service.extract(u.intent, [Item(u.text)]))[0].body
        pred = predicted_slots(body.get("output") or {})
        right.append(bool(body.get("output") is not None and all_right(pred, u.gold())))
        frontier.append(body.get("target") == "frontier")
        bar.update(1)
    bar.close()
    return {"utterances": len(utterances), "all_right": float(np.mean(right)), "frontier_share": float(np.mean(frontier))}


def distill_replay(data_dir: Path, per_intent: int, epochs: int, frontier_accuracy: float, threshold: float,
                   replay_limit: int | None, work: Path, fresh: bool, progress: bool) -> dict[str, Any]:
    """Serve the first `per_intent` training utterances per intent through the service (base model, cascade at
    `threshold`, the gold frontier), fine-tune from its decision log, redeploy, and replay the validate set (at most
    `replay_limit` per intent) through the base and the tuned service."""
    from openfirst.cascade.snips import load, slot_model
    from openfirst.pipeline.models import build_local
    from openfirst.compiler.task import compile_task
    from openfirst.finetune.artifact import is_tuned_model, load_card
    from openfirst.finetune.examples import merge, read_decisions
    from openfirst.finetune.prompt import TunedPrompt
    from openfirst.finetune.run import finetune
    from openfirst.finetune.train import TrainConfig

    data = load(data_dir)
    tasks = {d.intent: compile_task(slot_model(d)) for d in data}
    gold = {u.text: {s: v[0] for s, v in u.gold().items()} for d in data for u in d.train + d.validate}
    frontier = GoldFrontier(gold, frontier_accuracy)
    folder = work / f"distill-{per_intent}-fa{frontier_accuracy:g}-t{threshold:g}-v{BENCH_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    log_path, result_path, model_dir = folder / "decisions.jsonl", folder / "replay.json", folder / "model"
    if result_path.exists() and not fresh:
        return json.loads(result_path.read_text())
    validate = [u for d in data for u in d.validate[:replay_limit]]
    base = build_local("llama.cpp")
    try:
        if fresh or not log_path.exists():
            log_path.unlink(missing_ok=True)
            service = _service("smollm2", base, tasks, frontier, threshold, log_path)
            served = replay(service, [u for d in data for u in d.train[:per_intent]], progress, "serve (base)")
            service.decision_log.close()
        else:
            served = None
        before = replay(_service("smollm2", base, tasks, frontier, threshold, None), validate, progress,
                        "replay validate (base)")
    finally:
        base.close()
    sets = [read_decisions(log_path, t) for t in tasks.values()]
    learnt = merge(sets)
    if fresh or not is_tuned_model(model_dir):
        tuned = finetune(learnt, model_dir, config=TrainConfig(epochs=epochs), prompt=TunedPrompt("none"),
                         held_out_share=0.0, sources=[f"decision log {log_path}"], progress=progress)
    else:
        tuned = load_card(model_dir)
    backend = build_local("llama.cpp", tuned.gguf)
    try:
        after = replay(_service(str(model_dir), backend, tasks, frontier, threshold, None), validate, progress,
                       "replay validate (tuned)")
    finally:
        backend.close()
    result = {"served_per_intent": per_intent, "served": served, "cascade_threshold": threshold,
              "frontier": "gold annotation" if frontier_accuracy >= 1 else f"gold, {frontier_accuracy:.0%} accurate",
              "learnt_examples": len(learnt.examples), "train_seconds": tuned.card["training"]["seconds"],
              "validate_per_intent": replay_limit, "before": before, "after": after}
    result_path.write_text(json.dumps(result, indent=2))
    return result


def markdown(out: dict[str, Any]) -> str:
    b = out["base"]
    lines = [f"# Fine-tuning the local model on SNIPS (local: {out['local_model']})", "",
             f"CPU: {out['cpu']}. Frontier: {out['frontier']}. Validate utterances: "
             f"{b['cascade_curve'] and len(b['cascade_curve']['share']) - 1}. Slot F1: exact match, macro over slots "
             "within an intent, then over the 7 intents (the published engines' metric).", "",
             "## Slot F1 beside the published engines", "",
             "| system | training utterances / intent | " + " | ".join(INTENTS) + " | mean |",
             "|---|---|" + "---|" * (len(INTENTS) + 1)]

    def row(name, size, res):
        per = res["slot_f1"]["per_intent"]
        return (f"| {name} | {size} | " + " | ".join(f"{per[i]['macro_f1']:.2f}" if i in per else "-" for i in INTENTS)
                + f" | **{res['slot_f1']['macro']:.3f}** |")

    lines.append(row("SmolLM2-135M base, 5 similar examples", "70 (as examples)", b))
    for n, res in out["tuned"].items():
        lines.append(row(f"SmolLM2-135M LoRA-tuned ({res['epochs']} epoch(s))", n, res))
    for name, vals in PUBLISHED.items():
        lines.append(f"| {name} | 70 | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.3f} |")
    lines.append(f"| Snips NLU | full (~2,000) | " + " | ".join("-" for _ in INTENTS) + f" | {SNIPS_FULL:.3f} |")
    lines += ["", "## The cascade (re-learnt on each model's own outcomes, cross-fitted)", "",
              "| local model | all right locally | APGR | CPT(50%) | CPT(80%) | frontier share at 95% of the frontier's "
              "quality | cost / 1k utt there | local s/utt |", "|---|---|---|---|---|---|---|---|"]

    def crow(name, res):
        c, q = res["cascade"], res["at_95pct_frontier_quality"]
        share = "never" if q["frontier_share"] is None else f"{q['frontier_share']:.1%}"
        cost = "-" if q["cost_per_utterance_usd"] is None else f"${q['cost_per_utterance_usd'] * 1000:.3f}"
        return (f"| {name} | {res['all_right']:.1%} | {c['apgr']:.3f} | {_pct(c['cpt_50'])} | {_pct(c['cpt_80'])} | "
                f"{share} | {cost} | {res['local_seconds_per_utterance']:.2f} |")

    lines.append(crow("base, 5 similar examples", b))
    for n, res in out["tuned"].items():
        lines.append(crow(f"tuned, {n}/intent", res))
    lines += ["", "## Training (2 CPU cores)", "", "| training utterances / intent | examples | epochs | seconds | "
              "tokens/s | dtype | threads | process peak memory | loss first -> last | GGUF export s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for n, res in out["tuned"].items():
        lines.append(f"| {n} | {res['examples']} | {res['epochs']} | {res['train_seconds']:.0f} | "
                     f"{res['train_tokens_per_s']:.0f} | {res['dtype']} | {res['threads']} | "
                     f"{res['peak_memory_gib']:.1f} GiB | {res['loss_first']:.3f} -> {res['loss_last']:.3f} | "
                     f"{res['export_seconds']:.0f} |")
    g = out.get("gguf_types")
    if g:
        lines += ["", f"## The tuned GGUF's type (first size; {g['utterances_per_intent']} validate utterances per "
                  "intent)", "", "| GGUF type | slot F1 | all right | size |", "|---|---|---|---|"]
        for t, v in g["by_type"].items():
            lines.append(f"| {t} | {v['slot_f1']:.3f} | {v['all_right']:.1%} | {v['bytes'] / 2**20:.0f} MiB |")
    d = out.get("distillation")
    if d:
        lines += ["", "## Distillation replay through the service", "",
                  f"The first {d['served_per_intent']} training utterances per intent were served by `Service` (base "
                  f"model, cascade threshold {d['cascade_threshold']}, frontier: {d['frontier']}); "
                  f"`finetune --from-decisions` learnt from the {d['learnt_examples']} answers the frontier gave "
                  f"({d['train_seconds']:.0f} s of training); the validate set ({d['validate_per_intent']} per intent) "
                  "was replayed through the same service before and after redeploying.", "",
                  "| local model | utterances all right | frontier share |", "|---|---|---|",
                  f"| base | {d['before']['all_right']:.1%} | {d['before']['frontier_share']:.1%} |",
                  f"| tuned on the frontier's answers | {d['after']['all_right']:.1%} | "
                  f"{d['after']['frontier_share']:.1%} |"]
    lines += ["", f"Command: `{out.get('command') or 'openfirst bench finetune snips'}`; {out['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "never" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.1%}"


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["base + examples"] + [f"tuned {n}/intent" for n in out["tuned"]] + list(PUBLISHED) + ["Snips NLU full"]
    values = [out["base"]["slot_f1"]["macro"]] + [r["slot_f1"]["macro"] for r in out["tuned"].values()] + \
        [float(np.mean(v)) for v in PUBLISHED.values()] + [SNIPS_FULL]
    colors = ["tab:gray"] + ["tab:blue"] * len(out["tuned"]) + ["tab:olive"] * len(PUBLISHED) + ["tab:olive"]
    a.barh(range(len(names)), values, color=colors)
    a.set_yticks(range(len(names)), names, fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("macro slot F1 (mean over 7 intents)")
    a.set_title("SNIPS slot F1: SmolLM2-135M base vs LoRA-tuned vs NLU engines")
    for name, res, color in [("base", out["base"], "tab:gray")] + [(f"tuned {n}", r, None)
                                                                   for n, r in out["tuned"].items()]:
        c = res["cascade_curve"]
        b.plot(c["share"], c["accuracy"], color=color, label=f"{name} (CPT80 {_pct(res['cascade']['cpt_80'])})")
    b.set_xlabel("share of utterances sent to the frontier")
    b.set_ylabel("utterances with every slot right")
    b.set_title("The cascade on each local model")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
