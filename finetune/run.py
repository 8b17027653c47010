"""`finetune()`: examples -> held-out split -> LoRA training -> the artifact folder (adapter, merged weights, GGUF,
card) -> the held-out evaluation of the tuned model on llama.cpp (the engine that serves it by default)."""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from openfirst.finetune.artifact import GGUF_FILE, TunedModel, file_sha256, is_tuned_model, load_card, schema_hash, \
    write_card
from openfirst.finetune.errors import FinetuneError
from openfirst.finetune.examples import TrainingSet, split_held_out
from openfirst.finetune.prompt import TunedPrompt
from openfirst.finetune.train import LoraTrainer, TrainConfig, encode

STALE_NOTICE = ("the tuned model's outcomes differ from the base model's: a router or cascade threshold trained on the "
                "base model's outcomes is stale. Serve the tuned model, log its outcomes, and retrain them "
                "(`openfirst train`, `openfirst eval --decisions`); `openfirst bench finetune snips` shows the "
                "re-learnt cascade.")


@dataclass(frozen=True)
class BaseWeights:
    """What training starts from: a transformers folder, its GGUF (when it has one), a name and a hash."""

    name: str
    weights: Path  # transformers folder
    gguf: Path | None
    sha256: str

    @classmethod
    def resolve(cls, base: str) -> "BaseWeights":
        """`smollm2` (the embedded model: its GGUF, converted to transformers weights once), a transformers folder,
        or a tuned model's folder (training continues from its merged weights)."""
        if base == "smollm2":
            from openfirst.compiler.backends.llamacpp_local import gguf_path
            from openfirst.compiler.backends.transformers_local import smollm2_weights_dir

            gguf, name = gguf_path(None)
            return cls(name, smollm2_weights_dir(), gguf, file_sha256(gguf))
        path = Path(base)
        if is_tuned_model(path):
            tuned = load_card(path)
            return cls(tuned.name, tuned.merged, tuned.gguf, tuned.card["files"][GGUF_FILE])
        if not (path / "config.json").is_file():
            raise FinetuneError(f"base model {base!r} is neither smollm2 nor a transformers model folder",
                                hint="--base smollm2, or a folder with config.json and weights")
        h = hashlib.sha256()
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) + [path / "config.json"]:
            h.update(file_sha256(f).encode())
        return cls(path.name, path, None, h.hexdigest())


# Q8_0, not the base's Q4_1: re-quantising the merged SmolLM2 to Q4_1 erased the fine-tune (SNIPS slot F1 0.16,
# below the untuned model), Q8_0 kept it (0.63, F16 0.63) at half F16's size (benchmarks/results/finetune-snips.md)
DEFAULT_GGUF_TYPE = "Q8_0"


def gguf_settings(base: BaseWeights) -> tuple[str, str]:
    """(GGUF type, llama.cpp pre-tokenizer): Q8_0 (F16/F32 bases stay as they are) and the base GGUF's
    pre-tokenizer, else gpt-2."""
    from openfirst.finetune.gguf_export import gguf_file_type, gguf_metadata

    if base.gguf is None:
        return DEFAULT_GGUF_TYPE, "gpt-2"
    own = gguf_file_type(base.gguf)
    return (own if own in ("F16", "F32", "BF16", "Q8_0") else DEFAULT_GGUF_TYPE,
            gguf_metadata(base.gguf, "tokenizer.ggml.pre") or "gpt-2")


def finetune(data: TrainingSet, out: Path, *, base: str = "smollm2", config: TrainConfig = TrainConfig(),
             prompt: TunedPrompt = TunedPrompt(), held_out_share: float = 0.1, max_eval: int = 200,
             gguf_type: str | None = None, sources: list[str] | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> TunedModel:
    """Train, write the artifact to `out` (checkpoints in `out/checkpoint` while training; a rerun resumes), evaluate
    the held-out share with the tuned GGUF on llama.cpp, and return the verified artifact."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not data.examples:
        raise FinetuneError("no training examples", hint="check the data: every line was a duplicate or bad")
    if out.exists() and any(p for p in out.iterdir() if p.name != "checkpoint") and not is_tuned_model(out):
        raise FinetuneError(f"{out} exists and is not a tuned model; refusing to write into it")
    b = BaseWeights.resolve(base)
    train, held = split_held_out(data.examples, held_out_share, config.seed)
    tok = AutoTokenizer.from_pretrained(b.weights)
    enc_train, long_train = encode(train, data.tasks, tok, prompt, config.max_length)
    enc_held, _ = encode(held, data.tasks, tok, prompt, config.max_length)
    log(f"fine-tuning {b.name} on {len(enc_train)} examples ({len(held)} held out) of "
        f"{len(data.tasks)} task(s); LoRA rank {config.lora_rank}, {config.epochs} epoch(s)")
    model = AutoModelForCausalLM.from_pretrained(b.weights)
    trainer = LoraTrainer(model, tok, config)
    out.mkdir(parents=True, exist_ok=True)
    report = trainer.fit(enc_train, enc_held, checkpoint_dir=out / "checkpoint", base_name=b.sha256,
                         progress=progress, skipped_too_long=long_train)
    for part in ("adapter", "merged", GGUF_FILE):
        p = out / part
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    trainer.model.save_pretrained(out / "adapter")
    t0 = time.perf_counter()
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(out / "merged")
    tok.save_pretrained(out / "merged")
    from openfirst.finetune.gguf_export import export_gguf

    quant, pre = gguf_settings(b)
    export_gguf(out / "merged", out / GGUF_FILE, gguf_type or quant, pre)
    export_s = time.perf_counter() - t0
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    card: dict[str, Any] = {
        "name": out.name, "base": {"name": b.name, "sha256": b.sha256},
        "gguf": {"type": gguf_type or quant, "pre_tokenizer": pre},
        "tasks": {name: schema_hash(t) for name, t in data.tasks.items()}, "prompt": prompt.to_dict(),
        "data": {"sha256": data.digest(), "examples": len(data.examples), "train": len(train), "held_out": len(held),
                 "dropped": data.dropped, "sources": sources or []},
        "hyperparameters": asdict(config), "training": {k: v for k, v in report.to_dict().items() if k != "losses"},
        "loss_curve": report.losses[:: max(1, len(report.losses) // 200)], "export_seconds": export_s}
    write_card(out, card)
    tuned = load_card(out)
    if held:
        from openfirst.finetune.evaluate import score_held_out

        sample = held[:max_eval]
        log(f"evaluating {len(sample)} held-out example(s) with {GGUF_FILE} on llama.cpp")
        with tuned_runner(tuned) as run:
            score = score_held_out(sample, data.tasks, run)
        card["held_out_metrics"] = {**score.to_dict(), "held_out_loss_before": report.held_out_loss_before,
                                    "held_out_loss_after": report.held_out_loss_after}
        write_card(out, card)
        tuned = load_card(out)
    return tuned


class tuned_runner:
    """A context manager: `run(task, text) -> output | None` on the tuned GGUF through llama.cpp."""

    def __init__(self, tuned: TunedModel, engine: str = "llama.cpp"):
        self.tuned, self.engine = tuned, engine

    def __enter__(self):
        from openfirst.pipeline.models import build_local
        from openfirst.compiler.program import Program, ProgramOptions, Result

        self.backend = build_local(self.engine, str(self.tuned.path))
        opts = ProgramOptions(max_retries=0, leak_guard=False, schema_in_prompt=self.tuned.prompt.schema_in_prompt)

        def run(task, text):
            r = Program(self.tuned.serving_task(task), self.backend, opts).run_many([text])[0]
            return r.output if isinstance(r, Result) else None

        return run

    def __exit__(self, *exc) -> None:
        self.backend.close()


def describe(tuned: TunedModel) -> str:
    c = tuned.card
    t, h = c["training"], c.get("held_out_metrics")
    lines = [f"tuned model: {tuned.path} (base {c['base']['name']}, tasks {', '.join(sorted(c['tasks']))})",
             f"  trained on {c['data']['train']} examples, {t['epochs']} epoch(s), {t['steps']} steps in "
             f"{t['seconds']:.0f} s ({t['tokens_per_s']:.0f} tokens/s, {t['dtype']}, {t['threads']} threads, peak "
             f"{t['peak_memory_gib']:.1f} GiB); training loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}"]
    if h:
        lines.append(f"  held out ({h['examples']} examples): loss {h['held_out_loss_before']:.3f} -> "
                     f"{h['held_out_loss_after']:.3f}; outputs exactly right {h['exact_share']:.1%}, fields right "
                     f"{h['field_accuracy']:.1%}, valid {h['valid_share']:.1%}")
    lines.append(f"  serve it: openfirst extract --task ... --model {tuned.path}; in the service: [local] model = "
                 f"\"{tuned.path}\"")
    return "\n".join(lines)
