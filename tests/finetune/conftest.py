"""Fixtures for the fine-tuning tests: a model tuned once per session on the tiny random transformer."""

import pytest

from openfirst.cli import main
from tests.helpers import TASK, ticket_examples


@pytest.fixture(scope="session")
def tuned_dir(tmp_path_factory, tiny_model_dir):
    """`openfirst finetune` on 24 synthetic tickets, 2 epochs, 20% held out (slow: it trains)."""
    out = tmp_path_factory.mktemp("tuned") / "ticket-model"
    data = ticket_examples(out.parent / "train.jsonl")
    assert main(["finetune", str(data), "--task", TASK, "--out", str(out), "--base", str(tiny_model_dir),
                 "--epochs", "2", "--held-out", "0.2", "--no-progress"]) == 0
    return out
