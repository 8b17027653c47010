"""`[state]`: URLs from the file or the environment (OPENFIRST_STATE__*, REDIS_URL, DATABASE_URL), never shown in
what the service describes; a wrong password stops `openfirst serve --check` with a clear error."""

from openfirst.cli import main
from openfirst.state.settings import StateSettings


def test_urls_come_from_the_environment_where_the_file_sets_none(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://:pw@10.0.0.7:6379/0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = StateSettings().resolved()
    assert s.redis_url.get_secret_value() == "redis://:pw@10.0.0.7:6379/0" and s.database_url is None and s.shared
    assert StateSettings(redis_url="redis://other:6379/0").resolved().redis_url.get_secret_value() == \
        "redis://other:6379/0"
    assert "pw" not in repr(s)
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("OPENFIRST_STATE__DATABASE_URL", "sqlite:///x.db")
    from openfirst.service.config import ServiceConfig

    assert ServiceConfig().state.database_url.get_secret_value() == "sqlite:///x.db"


def test_serve_check_refuses_a_wrong_redis_password_clearly(tmp_path, redis_server, capsys):
    from tests.helpers import TASK

    wrong = redis_server.url.replace(redis_server.password, "wrong")
    config = tmp_path / "c.toml"
    config.write_text(f'[tasks]\nt = "{TASK}"\n[local]\nkind = "server"\nmodel = "m"\n'
                      f'base_url = "http://127.0.0.1:9/v1"\n[state]\nredis_url = "{wrong}"\n')
    assert main(["serve", "--config", str(config), "--check"]) == 2
    err = capsys.readouterr().err
    assert "Redis refused the connection" in err and "wrong" not in err
    config.write_text(config.read_text().replace(wrong, redis_server.url))
    assert main(["serve", "--config", str(config), "--check"]) == 0
    described = capsys.readouterr().out
    assert '"rate_limits": "redis"' in described and redis_server.password not in described
