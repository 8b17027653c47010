"""Backend settings: TOML file, environment on top, clear errors, secrets kept secret."""

import pytest

from compiler.settings import BackendSettings
from router.errors import ConfigError

TOML = '''
[local]
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
flavor = "llama.cpp"
max_concurrency = 4

[frontier]
model = "gpt-4o-mini"
price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }
retry = { max_attempts = 5, deadline_s = 30 }
'''


def test_file_then_environment(tmp_path, monkeypatch):
    path = tmp_path / "openfirst.toml"
    path.write_text(TOML)
    monkeypatch.setenv("OPENFIRST_FRONTIER__API_KEY", "sk-env-secret-123")
    monkeypatch.setenv("OPENFIRST_LOCAL__MAX_CONCURRENCY", "2")
    s = BackendSettings.load(path)
    assert s.local.flavor == "llama.cpp" and s.local.max_concurrency == 2  # env wins over the file
    assert s.frontier.retry.max_attempts == 5 and s.frontier.price.output_per_mtok == 0.6
    assert s.frontier.api_key.get_secret_value() == "sk-env-secret-123"
    assert "sk-env-secret-123" not in repr(s) and "sk-env-secret-123" not in repr(s.frontier.backend("frontier"))
    backend = s.local.backend("local")
    assert backend.model_name == "smollm2" and backend.max_concurrency == 2


def test_bad_config_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[local]\nmodel = "m"\nflavor = "grpc"\nmax_concurency = 3\n')
    with pytest.raises(ConfigError) as err:
        BackendSettings.load(path)
    assert "local.flavor" in str(err.value) and "max_concurency" in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        BackendSettings.load(tmp_path / "missing.toml")
    (tmp_path / "syntax.toml").write_text("[local\n")
    with pytest.raises(ConfigError, match="cannot read"):
        BackendSettings.load(tmp_path / "syntax.toml")
