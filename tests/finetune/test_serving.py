"""A tuned model served on the tiny random model: on llama.cpp and transformers (vLLM: the live test, its CPU
attention has no kernel for the tiny model's head size of 8), through `extract --model`, `Extractor(local=DIR)`
and the service, per task too; a task it was not tuned on is refused."""

import asyncio

import pytest

from openfirst.cli import main
from tests.helpers import OTHER_TASK, TASK

pytestmark = pytest.mark.slow


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
