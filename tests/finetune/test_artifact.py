"""The tuned model's card: checksums of every file, the card's own checksum, the HMAC signature with
OPENFIRST_ARTIFACT_KEY, and the task binding (schema hash)."""

import json

import pytest
from pydantic import BaseModel

from openfirst.compiler.task import compile_task
from openfirst.finetune.artifact import CARD_FILE, load_card, schema_hash, write_card
from openfirst.finetune.errors import FinetuneError, TaskMismatch


class Ticket(BaseModel):
    """Classify the ticket."""
    category: str


class Other(BaseModel):
    """Classify the ticket."""
    category: str
    priority: int


def _folder(tmp_path, monkeypatch, key=None):
    if key:
        monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", key)
    else:
        monkeypatch.delenv("OPENFIRST_ARTIFACT_KEY", raising=False)
    out = tmp_path / "m"
    (out / "merged").mkdir(parents=True)
    (out / "merged" / "weights.bin").write_bytes(b"w" * 100)
    (out / "model.gguf").write_bytes(b"g" * 10)
    write_card(out, {"name": "m", "tasks": {"Ticket": schema_hash(compile_task(Ticket))},
                     "prompt": {"schema_in_prompt": "none", "examples": False}})
    return out


def test_a_card_verifies_its_files_and_binds_the_task(tmp_path, monkeypatch):
    out = _folder(tmp_path, monkeypatch)
    tuned = load_card(out)
    assert tuned.gguf == out / "model.gguf" and tuned.merged == out / "merged"
    served = tuned.serving_task(compile_task(Ticket, examples=[("a ticket", {"category": "x"})]))
    assert served.examples == [] and tuned.prompt.schema_in_prompt == "none"
    with pytest.raises(TaskMismatch, match="tuned for task\\(s\\) Ticket, not for Other"):
        tuned.check_task(compile_task(Other))
    (out / "merged" / "weights.bin").write_bytes(b"x" * 100)
    with pytest.raises(FinetuneError, match="modified after fine-tuning"):
        load_card(out).merged
    card = json.loads((out / CARD_FILE).read_text())
    card["tasks"]["Other"] = schema_hash(compile_task(Other))
    (out / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(FinetuneError, match="checksum mismatch"):
        load_card(out)


def test_signed_cards_load_only_under_the_same_key(tmp_path, monkeypatch):
    out = _folder(tmp_path, monkeypatch, key="k1")
    assert load_card(out).card["signature"]
    monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", "k2")
    with pytest.raises(FinetuneError, match="a wrong signature"):
        load_card(out)
    unsigned = _folder(tmp_path / "u", monkeypatch)
    monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", "k1")
    with pytest.raises(FinetuneError, match="no signature"):
        load_card(unsigned)


def test_not_a_tuned_model(tmp_path):
    with pytest.raises(FinetuneError, match="not a tuned model"):
        load_card(tmp_path)
