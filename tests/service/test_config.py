"""Service configuration: the sample file validates; bad files fail with clear errors."""

import json

import pytest

from openfirst.service.config import ServiceConfig
from openfirst.core.errors import ConfigError
from tests.helpers import ROOT


def test_sample_config_validates_and_resolves_paths():
    cfg = ServiceConfig.from_file(ROOT / "openfirst.toml")
    assert set(cfg.tasks) == {"support_ticket", "invoice", "meeting_notes"}
    assert cfg.tasks["invoice"].startswith(str(ROOT / "datasets/tasks/invoice.py"))
    assert cfg.router.artifact == ROOT / "runs/gsm8k"
    assert cfg.local.kind == "vllm" and cfg.frontier.flavor == "openai"
    assert cfg.log.decisions == ROOT / "runs/decisions.jsonl"


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ('[tasks]\nt = "no_colon"\n', "must look like module:Class"),
    ('[tasks]\n"bad name!" = "m:C"\n', "task name"),
    ('[limits]\nmax_batch = 0\n', "limits.max_batch"),
    ('[privacy]\npatterns = ["(unclosed"]\n', "not a valid regex"),
    ('[local]\nkind = "server"\n', "local.server.model"),
    ('[local]\nkind = "gpu-magic"\n', "local"),
    ('[router]\nthreshhold = 0.2\n', "router.threshhold"),
    ('[router]\nthreshold = 0.2\nfrontier_share = 0.3\ncalibration = "routellm-gsm8k"\n', "not both"),
    ('[router]\nfrontier_share = 0.3\n', "go together"),
    ('[tasks\n', "cannot read"),
    ('[tasks]\nt = "m:C"\n[privacy]\npin_tasks = ["other"]\n', "unknown tasks"),
])
def test_bad_config_fails_clearly(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        ServiceConfig.from_file(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        ServiceConfig.from_file("/nonexistent/openfirst.toml")


def test_environment_overrides_the_file_and_secret_stays_secret(tmp_path, monkeypatch):
    path = write(tmp_path, '[tasks]\nt = "m:C"\n[frontier]\nmodel = "gpt-4o-mini"\n[router]\nthreshold = 0.1\n')
    monkeypatch.setenv("OPENFIRST_FRONTIER__API_KEY", "sk-from-env-123456")
    monkeypatch.setenv("OPENFIRST_ROUTER__THRESHOLD", "0.7")
    cfg = ServiceConfig.from_file(path)
    assert cfg.router.threshold == 0.7
    assert cfg.frontier.api_key.get_secret_value() == "sk-from-env-123456"
    assert "sk-from-env" not in repr(cfg) and "sk-from-env" not in cfg.model_dump_json()


def test_describe_and_check_never_show_secrets_in_urls(tmp_path, capsys):
    from openfirst.cli import main
    from openfirst.service.config import ServiceConfig
    from openfirst.service.service import Service

    config = tmp_path / "c.toml"
    config.write_text(f'''
[tasks]
support_ticket = "{ROOT}/datasets/tasks/support_ticket.py:SupportTicket"
[local]
kind = "server"
model = "m"
base_url = "http://ops:sk-local-secret@127.0.0.1:9/v1"
[frontier]
model = "f"
base_url = "http://127.0.0.1:9/v1?api-key=sk-frontier-secret"
api_key = "sk-header-secret"
[log]
decisions = "{tmp_path}/d.jsonl"
''')
    service = Service.from_config(ServiceConfig.from_file(config))
    text = json.dumps(service.describe())
    assert main(["serve", "--config", str(config), "--check"]) == 0
    text += capsys.readouterr().out
    for secret in ("sk-local-secret", "sk-frontier-secret", "sk-header-secret", "ops:"):
        assert secret not in text, secret
    assert "api-key=***" in text
