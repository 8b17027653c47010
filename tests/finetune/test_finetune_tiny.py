"""End to end on the tiny random model: `openfirst finetune` writes adapter, merged weights, GGUF and card; an
interrupted run resumes from its checkpoint; the artifact serves on llama.cpp and transformers (vLLM: the live
test, its CPU attention has no kernel for the tiny model's head size of 8), through
`extract --model`, `Extractor(local=DIR)` and the service; a task it was not tuned on is refused; and fine-tuning
from a service's decision log never sees a pinned (private) request."""

import asyncio
import json
from pathlib import Path

import pytest

from openfirst.cli import main
from tests.helpers import ROOT

pytestmark = pytest.mark.slow
TASK = f"{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
OTHER_TASK = f"{ROOT}/datasets/tasks/invoice.py:Invoice"
CATS = ["billing", "shipping", "account", "technical", "other"]


def _examples(path: Path, n: int = 24) -> Path:
    rows = [{"id": str(i), "input": f"Ticket {i}: my {CATS[i % 5]} problem needs help",
             "output": {"category": CATS[i % 5], "priority": 1 + i % 5, "summary": f"A {CATS[i % 5]} problem."}}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tuned_dir(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("tuned") / "ticket-model"
    data = _examples(out.parent / "train.jsonl")
    assert main(["finetune", str(data), "--task", TASK, "--out", str(out), "--base", str(tiny_model_dir),
                 "--epochs", "2", "--held-out", "0.2", "--no-progress"]) == 0
    return out


def test_the_artifact_holds_every_part_and_a_card(tuned_dir, tiny_model_dir):
    from openfirst.finetune.artifact import load_card

    tuned = load_card(tuned_dir)
    card = tuned.card
    assert (tuned_dir / "adapter" / "adapter_config.json").is_file() and (tuned_dir / "merged" / "config.json").is_file()
    assert tuned.gguf.stat().st_size > 0 and not (tuned_dir / "checkpoint").exists()
    assert card["base"]["name"] == tiny_model_dir.name and len(card["base"]["sha256"]) == 64
    assert list(card["tasks"]) == ["SupportTicket"] and card["prompt"] == {"schema_in_prompt": "none",
                                                                           "examples": False}
    assert card["data"]["examples"] == 24 and card["data"]["train"] + card["data"]["held_out"] == 24
    assert card["hyperparameters"]["lora_rank"] == 16 and card["training"]["steps"] > 0
    h = card["held_out_metrics"]
    assert h["examples"] == card["data"]["held_out"] and h["held_out_loss_after"] < h["held_out_loss_before"]
    assert card["versions"]["peft"] != "not installed" and "model.gguf" in card["files"]


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_model_dir):
    """Fault injection: a KeyboardInterrupt after step 3; the rerun resumes there and ends where an uninterrupted
    run ends."""
    import torch
    from peft import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openfirst.compiler.task import load_task
    from openfirst.finetune.examples import read_labelled
    from openfirst.finetune.prompt import TunedPrompt
    from openfirst.finetune.train import LoraTrainer, TrainConfig, encode

    task = load_task(TASK)
    ts = read_labelled(_examples(tmp_path / "d.jsonl", 32), task)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc, _ = encode(ts.examples, ts.tasks, tok, TunedPrompt(), 1024)
    cfg = TrainConfig(epochs=1, batch_size=4, checkpoint_every_s=0.0)

    def trainer():
        return LoraTrainer(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok, cfg)

    def stop(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer().fit(enc, [], checkpoint_dir=tmp_path / "ck", progress=False, on_step=stop)
    assert (tmp_path / "ck" / "checkpoint.pt").is_file()
    resumed = trainer()
    report = resumed.fit(enc, [], checkpoint_dir=tmp_path / "ck", progress=False)
    assert report.resumed_from_step == 3 and report.steps == 8 and len(report.losses) == 8
    clean = trainer()
    clean.fit(enc, [], progress=False)
    a, b = get_peft_model_state_dict(resumed.model), get_peft_model_state_dict(clean.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not (tmp_path / "ck" / "checkpoint.pt").exists()


@pytest.mark.parametrize("engine", ["llama.cpp", "transformers"])
def test_the_tuned_model_serves_on_the_in_process_engines(tuned_dir, engine):
    from openfirst.compiler.backends.isolated import EngineSpec
    from openfirst.compiler.program import Program, ProgramOptions
    from openfirst.compiler.task import load_task
    from openfirst.finetune.serving import tuned_task

    task, options = tuned_task(tuned_dir, load_task(TASK), ProgramOptions(max_tokens=40, max_retries=0))
    assert options.schema_in_prompt == "none" and task.examples == []
    backend = EngineSpec(engine, str(tuned_dir)).load()
    try:
        out = Program(task, backend, options).run_many(["my parcel never arrived"])[0]
    finally:
        backend.close()
    assert out.usage["completion_tokens"] > 0  # a random model: it generates under the grammar, right or not


def test_extract_and_the_python_api_serve_it_and_refuse_another_task(tuned_dir, capsys):
    from openfirst.pipeline.extractor import Extractor
    from openfirst.compiler.program import ProgramOptions
    from openfirst.finetune.errors import TaskMismatch
    from openfirst.compiler.task import load_task_class

    rc = main(["extract", "--task", TASK, "--model", str(tuned_dir), "--backend", "llama.cpp", "--max-tokens", "40",
               "--max-retries", "0", "my parcel never arrived"])
    assert rc in (0, 1)  # served (a random model's answer may fail validation), not refused
    capsys.readouterr()
    assert main(["extract", "--task", OTHER_TASK, "--model", str(tuned_dir), "--backend", "llama.cpp",
                 "an invoice"]) == 2
    assert "was tuned for task(s) SupportTicket, not for Invoice" in capsys.readouterr().err
    ex = Extractor(load_task_class(TASK), local=str(tuned_dir), options=ProgramOptions(max_tokens=40, max_retries=0))
    local = ex.pipeline.programs["task"]["local"]
    assert local.task.examples == [] and local.options.schema_in_prompt == "none"
    with pytest.raises(TaskMismatch):
        Extractor(load_task_class(OTHER_TASK), local=str(tuned_dir))


def test_the_service_serves_it_as_local_model(tuned_dir, tmp_path):
    from openfirst.service.config import ServiceConfig
    from openfirst.pipeline import Item
    from openfirst.service.service import Service

    cfg = ServiceConfig(tasks={"ticket": TASK}, local={"kind": "llamacpp", "model": str(tuned_dir), "isolate": False},
                        program={"max_tokens": 40, "max_retries": 0},
                        log={"decisions": str(tmp_path / "d.jsonl")})
    service = Service.from_config(cfg)
    try:
        program = service.pipeline.programs["ticket"]["local"]
        assert program.task.examples == [] and program.options.schema_in_prompt == "none"
        body = asyncio.run(service.extract("ticket", [Item("my parcel never arrived")]))[0].body
        assert body["target"] == "local"
    finally:
        service.close()
    bad = ServiceConfig(tasks={"invoice": OTHER_TASK}, local={"kind": "llamacpp", "model": str(tuned_dir)})
    from openfirst.finetune.errors import TaskMismatch
    with pytest.raises(TaskMismatch):
        Service.from_config(bad)


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


def test_per_task_tuned_models_in_the_service(tuned_dir, tiny_model_dir, tmp_path):
    """`[local] task_models`: the ticket task on its tuned model, the invoice task on the base model, one service."""
    from openfirst.core.errors import ConfigError
    from openfirst.service.config import ServiceConfig
    from openfirst.pipeline import Item
    from openfirst.service.service import Service

    toml = tmp_path / "openfirst.toml"
    toml.write_text(f'[tasks]\nticket = "{TASK}"\ninvoice = "{OTHER_TASK}"\n\n[local]\nkind = "transformers"\n'
                    f'model = "{tiny_model_dir}"\nisolate = false\ntask_models = {{ ticket = "{tuned_dir}" }}\n\n'
                    f'[program]\nmax_tokens = 30\nmax_retries = 0\n\n[log]\ndecisions = "{tmp_path / "d.jsonl"}"\n')
    service = Service.from_config(ServiceConfig.from_file(toml))
    try:
        ticket, invoice = service.pipeline.programs["ticket"]["local"], service.pipeline.programs["invoice"]["local"]
        assert ticket.backend is service.models.backend("local:ticket") and invoice.backend is service.models.backend("local")
        assert ticket.options.schema_in_prompt == "none" and invoice.options.schema_in_prompt == "outline"
        body = asyncio.run(service.extract("ticket", [Item("my parcel never arrived")]))[0].body
        assert body["target"] == "local"
    finally:
        service.close()
    toml.write_text(toml.read_text().replace("ticket = \"" + str(tuned_dir), "nope = \"" + str(tuned_dir)))
    with pytest.raises(ConfigError, match="task_models names unknown tasks"):
        ServiceConfig.from_file(toml)
