"""`openfirst finetune --from-decisions`: fine-tuning from a service's decision log never sees a pinned (private)
request."""

import asyncio
import json

import pytest

from openfirst.cli import main
from tests.helpers import CATS, ROOT, TASK

pytestmark = pytest.mark.slow


def test_fine_tuning_from_a_decision_log_never_sees_a_pinned_request(tmp_path, tiny_model_dir, capsys):
    """The privacy corpus (every PII kind) and ordinary tickets go through the service, every unpinned one to the
    frontier; the log then trains a model: only the ordinary tickets are training data."""
    from openfirst.compiler.backends.fake import ScriptedBackend
    from openfirst.finetune.examples import read_decisions
    from openfirst.compiler.task import load_task
    from openfirst.service.config import ServiceConfig
    from openfirst.service.decision_log import DecisionLog
    from openfirst.pipeline import Item, ModelRegistry
    from openfirst.service.service import Service

    corpus = [json.loads(line)["text"] for line in
              (ROOT / "datasets" / "privacy" / "positives.jsonl").read_text().splitlines()]
    pinned = [f"Please help, my details: {t}" for t in corpus]
    ordinary = [f"Ticket {i}: the {CATS[i % 5]} page shows an error" for i in range(12)]
    frontier_answer = '{"category":"technical","priority":2,"summary":"The page shows an error."}'
    log = tmp_path / "decisions.jsonl"
    config = ServiceConfig(tasks={"support_ticket": TASK}, router={"default_target": "frontier"},
                           local={"kind": "server", "model": "local-model", "base_url": "http://127.0.0.1:9/v1"})
    task = load_task(TASK)
    task.name = "support_ticket"
    local = ScriptedBackend(['{"category":"other","priority":1,"summary":"x"}'], cycle=True)
    frontier = ScriptedBackend([frontier_answer], cycle=True, model_name="frontier-model")
    service = Service(config, {"support_ticket": task}, ModelRegistry.of(local, frontier), None, DecisionLog(log))
    out = asyncio.run(service.extract("support_ticket", [Item(t) for t in pinned + ordinary]))
    service.close()
    bodies = [o.body for o in out]
    was_pinned = [bool(b["pin_reasons"]) for b in bodies]
    assert sum(was_pinned[:len(pinned)]) >= 0.99 * len(pinned) and not any(was_pinned[len(pinned):])
    assert all(b["target"] == ("local" if p else "frontier") for b, p in zip(bodies, was_pinned))
    text = log.read_text()
    leaked = [t for t, p in zip(pinned, was_pinned) if p and t.split(": ", 1)[1] in text]
    assert leaked == []  # no pinned input in the log, nor any output copied from one
    ts = read_decisions(log, task)
    unpinned = [t for t, p in zip(pinned + ordinary, was_pinned) if not p]
    assert sorted(ex.input for ex in ts.examples) == sorted(unpinned)
    assert not {ex.input for ex in ts.examples} & {t for t, p in zip(pinned, was_pinned) if p}
    out_dir = tmp_path / "distilled"
    args = ["finetune", "--task", TASK, "--from-decisions", str(log), "--out", str(out_dir), "--base",
            str(tiny_model_dir), "--epochs", "1", "--no-progress", "--json"]
    assert main(args) == 2  # the service named the task support_ticket, the class is SupportTicket
    assert "holds no decision for task 'SupportTicket'; it holds support_ticket" in capsys.readouterr().err
    assert main(args + ["--service-task", "support_ticket"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["data"]["examples"] == len(unpinned) and "decision log" in card["data"]["sources"][0]
