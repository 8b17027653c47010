"""LoRA training on CPU or GPU: the loss on the output tokens only, length-bucketed batches, seeded, a progress bar
with tokens/s and ETA, and checkpoints so an interrupted run resumes where it stopped.

Speed on 2 cores comes from short prompts (no examples in a tuned model's prompt), batches of similar lengths (little
padding), all usable cores, and the output head only where a target token is predicted.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from openfirst.compiler.task import CompiledTask
from openfirst.finetune.errors import FinetuneError
from openfirst.finetune.examples import TrainingExample
from openfirst.finetune.prompt import TunedPrompt, target_text


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    lora_rank: int = 16
    lora_alpha: float | None = None  # None: 2 x rank
    lora_dropout: float = 0.05
    learning_rate: float = 1e-3
    warmup_share: float = 0.05
    batch_size: int = 8
    max_length: int = 1024  # longer examples are left out (counted), never truncated into a wrong target
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    checkpoint_every_s: float = 120.0

    def validate(self) -> None:
        if self.epochs < 1 or self.lora_rank < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise FinetuneError("--epochs, --lora-rank and --batch-size must be at least 1 and the learning rate > 0")


@dataclass
class Encoded:
    ids: list[int]
    n_prompt: int  # tokens before the target: their labels are masked out of the loss


@dataclass
class TrainReport:
    examples: int
    held_out: int
    skipped_too_long: int
    steps: int
    epochs: int
    train_tokens: int  # tokens processed (prompt + target), all epochs
    target_tokens: int
    seconds: float
    tokens_per_s: float
    dtype: str
    threads: int
    device: str
    peak_memory_gib: float
    loss_first: float | None
    loss_last: float | None
    held_out_loss_before: float | None
    held_out_loss_after: float | None
    resumed_from_step: int = 0
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_dtype(dtype: str, device: str) -> str:
    """auto: bfloat16 autocast on a GPU that has it; float32 on CPU (with a tuned model's short prompts, bfloat16
    autocast was no faster on 2 Sapphire Rapids cores with AMX in a one-off check, 216 vs 232 tokens/s; not in
    benchmarks/results)."""
    if dtype != "auto":
        return dtype
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "float32"


def encode(examples: Sequence[TrainingExample], tasks: dict[str, CompiledTask], tokenizer: Any, prompt: TunedPrompt,
           max_length: int) -> tuple[list[Encoded], int]:
    """(encoded examples, how many were too long). The prompt is the chat template over the task's messages with
    the generation prompt; the target is the output as the grammar writes it, then the end-of-turn token."""
    eos = tokenizer.eos_token or ""
    out, too_long = [], 0
    for ex in examples:
        text = tokenizer.apply_chat_template(prompt.messages(tasks[ex.task], ex.input), tokenize=False,
                                             add_generation_prompt=True)
        p = tokenizer(text, add_special_tokens=False)["input_ids"]
        t = tokenizer(target_text(ex.output) + eos, add_special_tokens=False)["input_ids"]
        if len(p) + len(t) > max_length:
            too_long += 1
            continue
        out.append(Encoded(list(p) + list(t), len(p)))
    return out, too_long


def batches(encoded: Sequence[Encoded], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Indices in batches of similar length (sorted with a little noise, so batches differ between epochs), in a
    shuffled order."""
    lengths = np.asarray([len(e.ids) for e in encoded], dtype=float)
    order = np.argsort(lengths + rng.uniform(0, 8, len(lengths)), kind="stable")
    chunks = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def collate(items: Sequence[Encoded], pad_id: int):
    import torch

    n = max(len(e.ids) for e in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    labels = torch.full((len(items), n), -100, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    for i, e in enumerate(items):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        labels[i, e.n_prompt:len(e.ids)] = torch.tensor(e.ids[e.n_prompt:])
        mask[i, :len(e.ids)] = 1
    return ids, mask, labels


def _fingerprint(config: TrainConfig, encoded: Sequence[Encoded], base: str) -> str:
    h = hashlib.sha256(json.dumps([asdict(config), base], sort_keys=True).encode())
    for e in encoded:
        h.update(np.asarray(e.ids + [-1, e.n_prompt], dtype=np.int64).tobytes())
    return h.hexdigest()


class LoraTrainer:
    """Wraps a transformers causal LM in a LoRA adapter (every linear layer but the output head) and trains it."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig, device: str | None = None):
        import torch
        from peft import LoraConfig, get_peft_model

        from openfirst.core.machine import usable_cores

        config.validate()
        self.config = config
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.threads = usable_cores()
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        torch.manual_seed(config.seed)
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha or 2 * config.lora_rank,
                          lora_dropout=config.lora_dropout, target_modules="all-linear", task_type="CAUSAL_LM")
        self.model = get_peft_model(model.to(self.device), lora)

    def _autocast(self):
        import contextlib

        import torch

        if self.dtype == "bfloat16":
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loss(self, items: Sequence[Encoded]):
        """Mean cross-entropy over the target tokens. The output head (49k x 576 for SmolLM2) runs only at the
        positions that predict a target token, not over the whole prompt."""
        import torch

        ids, mask, labels = (t.to(self.device) for t in collate(items, self.tokenizer.pad_token_id))
        causal_lm = self.model.get_base_model()
        with self._autocast():
            hidden = causal_lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
            predicts = labels[:, 1:] != -100  # position t predicts token t + 1
            logits = causal_lm.lm_head(hidden[:, :-1][predicts])
        return torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:][predicts])

    def evaluate(self, encoded: Sequence[Encoded]) -> float | None:
        """Mean loss per target token over `encoded` (None when empty)."""
        import torch

        if not encoded:
            return None
        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(encoded), self.config.batch_size):
                chunk = encoded[i:i + self.config.batch_size]
                k = sum(len(e.ids) - e.n_prompt for e in chunk)
                total += float(self._loss(chunk)) * k
                n += k
        return total / n

    def fit(self, train: Sequence[Encoded], held_out: Sequence[Encoded], checkpoint_dir: Path | None = None,
            base_name: str = "", progress: bool = True, skipped_too_long: int = 0,
            on_step: Callable[[int], None] | None = None) -> TrainReport:
        """Train; with `checkpoint_dir`, save a checkpoint every `checkpoint_every_s` and resume from one left by an
        interrupted run of the same examples and settings. `on_step(step)` is called after each optimiser step."""
        import torch
        from tqdm.auto import tqdm

        if not train:
            raise FinetuneError("no training examples left", hint="give more examples, or a smaller held-out share")
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        plan = [batches(train, cfg.batch_size, rng) for _ in range(cfg.epochs)]
        steps = sum(len(p) for p in plan)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
        warm = max(1, int(cfg.warmup_share * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))
        before = self.evaluate(held_out)
        fingerprint = _fingerprint(cfg, train, base_name)
        start_step, losses = 0, []
        ckpt = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
        if ckpt is not None and ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            if state.get("fingerprint") == fingerprint:
                from peft import set_peft_model_state_dict

                set_peft_model_state_dict(self.model, state["adapter"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                start_step, losses = state["step"], state["losses"]
                before = state.get("held_out_before", before)
                torch.set_rng_state(state["torch_rng"])
        tokens_total = sum(len(train[i].ids) for p in plan for b in p for i in b)
        bar = tqdm(total=tokens_total, desc="fine-tuning", unit="tok", unit_scale=True, disable=not progress,
                   dynamic_ncols=True)
        flat = [b for p in plan for b in p]
        done_tokens = sum(len(train[i].ids) for b in flat[:start_step] for i in b)
        bar.update(done_tokens)
        self.model.train()
        t0 = last_save = time.perf_counter()
        seen = 0
        for step in range(start_step, steps):
            items = [train[i] for i in flat[step]]
            loss = self._loss(items)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            k = sum(len(e.ids) for e in items)
            seen += k
            bar.update(k)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", epoch=f"{1 + step * cfg.epochs // steps}/{cfg.epochs}")
            if ckpt is not None and (time.perf_counter() - last_save >= cfg.checkpoint_every_s) and step + 1 < steps:
                self._save_checkpoint(ckpt, fingerprint, step + 1, losses, opt, sched, before)
                last_save = time.perf_counter()
            if on_step is not None:
                on_step(step + 1)
        bar.close()
        seconds = time.perf_counter() - t0
        after = self.evaluate(held_out)
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
        self.model.eval()
        return TrainReport(
            examples=len(train), held_out=len(held_out), skipped_too_long=skipped_too_long, steps=steps,
            epochs=cfg.epochs, train_tokens=tokens_total,
            target_tokens=sum(len(e.ids) - e.n_prompt for e in train) * cfg.epochs, seconds=seconds,
            tokens_per_s=seen / seconds if seconds > 0 else math.nan, dtype=self.dtype, threads=self.threads,
            device=self.device, peak_memory_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            loss_first=float(np.mean(losses[:10])) if losses else None,
            loss_last=float(np.mean(losses[-10:])) if losses else None, held_out_loss_before=before,
            held_out_loss_after=after, resumed_from_step=start_step, losses=[round(x, 4) for x in losses])

    def _save_checkpoint(self, path: Path, fingerprint: str, step: int, losses: list[float], opt, sched,
                         before: float | None) -> None:
        import torch
        from peft import get_peft_model_state_dict

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"fingerprint": fingerprint, "step": step, "losses": losses, "held_out_before": before,
                    "adapter": get_peft_model_state_dict(self.model), "optimizer": opt.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "scheduler": sched.state_dict()}, tmp)
        tmp.replace(path)
