from pathlib import Path

from openfirst.core.paths import cache_dir


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENFIRST_CACHE", str(tmp_path))
    assert cache_dir("models", "x") == tmp_path / "models" / "x"
    monkeypatch.delenv("OPENFIRST_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "openfirst"
