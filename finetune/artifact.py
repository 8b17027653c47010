"""A tuned model as one folder every local engine serves.

    DIR/adapter/             the LoRA adapter (PEFT format)
    DIR/merged/              base + adapter merged: transformers and vLLM load it
    DIR/model.gguf           the merged model for llama.cpp, quantised like the base model's GGUF
    DIR/openfirst-model.json the card: base model and its hash, tasks and their schema hashes, the prompt the model was
                             trained on, data hash and counts, hyper-parameters, training and held-out figures,
                             library versions, every file's SHA-256; signed (HMAC) with $OPENFIRST_ARTIFACT_KEY when set

`load_card` verifies the card (checksum, signature) and `TunedModel.check_task` refuses a task whose schema the model
was not tuned on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from openfirst.compiler.task import CompiledTask
from openfirst.finetune.errors import FinetuneError, TaskMismatch
from openfirst.finetune.prompt import TunedPrompt
from openfirst.router.artifact import canonical_json, signing_key
from openfirst.router.download import sha256_file as file_sha256

CARD_FILE = "openfirst-model.json"
FORMAT = "openfirst-tuned-model"
FORMAT_VERSION = 1
GGUF_FILE = "model.gguf"


def schema_hash(task: CompiledTask) -> str:
    """SHA-256 of the task's JSON Schema (canonical JSON): what a tuned model is bound to."""
    return hashlib.sha256(canonical_json(task.json_schema)).hexdigest()


def versions() -> dict[str, str]:
    out = {}
    for dist in ("openfirst", "torch", "transformers", "peft", "llama-cpp-python", "gguf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def is_tuned_model(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CARD_FILE).is_file()


def _sign(key: bytes, card_sha256: str) -> str:
    return hmac.new(key, f"{FORMAT}:{card_sha256}".encode(), hashlib.sha256).hexdigest()


def write_card(out_dir: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Add format, versions and every file's checksum, then the card's own checksum and signature."""
    files = {str(p.relative_to(out_dir)): file_sha256(p) for p in sorted(out_dir.rglob("*"))
             if p.is_file() and p.name != CARD_FILE and "checkpoint" not in p.parts}
    body = dict(card, format=FORMAT, format_version=FORMAT_VERSION, versions=versions(), files=files)
    body["card_sha256"] = hashlib.sha256(canonical_json(body)).hexdigest()
    key = signing_key()
    if key is not None:
        body["signature"] = _sign(key, body["card_sha256"])
    (out_dir / CARD_FILE).write_text(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return body


@dataclass
class TunedModel:
    """A verified tuned-model folder."""

    path: Path
    card: dict[str, Any]

    @property
    def prompt(self) -> TunedPrompt:
        return TunedPrompt.from_dict(self.card.get("prompt", {}))

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name

    @property
    def merged(self) -> Path:
        return self.file("merged")

    @property
    def gguf(self) -> Path:
        return self.file(GGUF_FILE)

    @property
    def adapter(self) -> Path:
        return self.file("adapter")

    def file(self, rel: str) -> Path:
        """A part of the folder, its checksums verified against the card (a folder: each file in it)."""
        path = self.path / rel
        files = self.card.get("files", {})
        names = [n for n in files if n == rel or n.startswith(rel.rstrip("/") + "/")]
        if not path.exists() or not names:
            raise FinetuneError(f"{self.path} has no {rel}", hint="fine-tune again: the folder is incomplete")
        for n in names:
            if file_sha256(self.path / n) != files[n]:
                raise FinetuneError(f"{self.path / n} was modified after fine-tuning (checksum mismatch); refusing "
                                    "to load it", hint="fine-tune again, or restore the original file")
        return path

    def check_task(self, task: CompiledTask) -> None:
        """TaskMismatch unless the model was tuned on this task's schema."""
        tasks = self.card.get("tasks", {})
        got = schema_hash(task)
        if got not in tasks.values():
            named = f" (tuned for {task.name!r} with another schema)" if task.name in tasks else ""
            raise TaskMismatch(
                f"{self.path} was tuned for task(s) {', '.join(sorted(tasks)) or 'none'}, not for {task.name} with "
                f"schema {got[:12]}{named}",
                hint="serve it only for the task it was tuned on, or fine-tune on this task's schema")

    def serving_task(self, task: CompiledTask) -> CompiledTask:
        """The task as this model was trained to see it (checked first)."""
        self.check_task(task)
        return self.prompt.task(task)


def load_card(path: str | Path) -> TunedModel:
    path = Path(path)
    card_file = path / CARD_FILE
    if not card_file.is_file():
        raise FinetuneError(f"{path} is not a tuned model (no {CARD_FILE})",
                            hint="make one with `openfirst finetune --task FILE.py:Model DATA --out DIR`")
    try:
        body = json.loads(card_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinetuneError(f"{card_file}: not valid JSON ({exc})") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise FinetuneError(f"{card_file}: not an openfirst tuned-model card")
    if body.get("format_version") != FORMAT_VERSION:
        raise FinetuneError(f"{path}: card format {body.get('format_version')!r}, this openfirst reads "
                            f"{FORMAT_VERSION}", hint="fine-tune again with this version of openfirst")
    check = dict(body)
    signature, claimed = check.pop("signature", None), check.pop("card_sha256", None)
    key = signing_key()
    if key is not None and not (isinstance(signature, str) and isinstance(claimed, str)
                                and hmac.compare_digest(signature, _sign(key, claimed))):
        raise FinetuneError(f"{path}: {'no' if signature is None else 'a wrong'} signature for this "
                            "OPENFIRST_ARTIFACT_KEY; refusing to load",
                            hint="load only models tuned with your key set")
    if claimed != hashlib.sha256(canonical_json(check)).hexdigest():
        raise FinetuneError(f"{card_file} was modified after fine-tuning (checksum mismatch); refusing to load")
    return TunedModel(path, body)
