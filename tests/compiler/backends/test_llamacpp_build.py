"""The llama.cpp build is portable: no instruction set beyond what .ci/build_llamacpp asks for (the AMX crash of
issue 20 came from a native build), whatever CPU built it; and the check after the build reports what failed."""

import re
from pathlib import Path

import pytest

from openfirst.compiler.backends.llamacpp_build import PORTABLE_X86, X86_ISA, beyond_portable, compiled_features

ROOT = Path(__file__).resolve().parents[3]
NATIVE_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
              "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
              "REPACK = 1 |")
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 |"


def test_a_native_build_on_an_amx_machine_is_reported_beyond_portable():
    assert beyond_portable(compiled_features(NATIVE_AMX)) == ["AMX_INT8", "AVX512", "AVX512_BF16", "AVX512_VBMI",
                                                             "AVX512_VNNI"]


def test_the_portable_build_is_not_and_non_isa_entries_are_ignored():
    features = compiled_features(PORTABLE)
    assert "LLAMAFILE" in features and beyond_portable(features) == []


def test_the_build_script_asks_for_exactly_the_portable_instruction_sets():
    script = (ROOT / ".ci" / "build_llamacpp").read_text()
    on = set(re.findall(r"-DGGML_(\w+)=ON", script)) - {"NATIVE"}
    off = set(re.findall(r"-DGGML_(\w+)=OFF", script)) - {"NATIVE"}
    # llama.cpp reports SSE3/SSSE3 for every x86-64 build, and never SSE4.2
    assert on - {"SSE42"} == PORTABLE_X86 - {"SSE3", "SSSE3"}
    assert off == X86_ISA - PORTABLE_X86  # everything newer is switched off by name, not left to defaults
    assert "-DGGML_NATIVE=OFF" in script


@pytest.mark.slow
def test_the_installed_llamacpp_build_reports_no_instruction_set_beyond_the_portable_ones():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    from openfirst.compiler.backends.llamacpp_build import system_info

    info = system_info()
    assert "AVX2 = 1" in info, info
    assert beyond_portable(compiled_features(info)) == [], info


def test_the_portable_check_the_build_script_runs_refuses_a_native_build(monkeypatch):
    from openfirst.compiler.backends import llamacpp_build

    monkeypatch.setattr(llamacpp_build, "system_info", lambda: NATIVE_AMX)
    assert llamacpp_build.main(["--portable"]) == 1  # .ci/build_llamacpp rebuilds
    monkeypatch.setattr(llamacpp_build, "system_info", lambda: PORTABLE)
    assert llamacpp_build.main(["--portable"]) == 0  # kept
    assert '"$PY" compiler/backends/llamacpp_build.py --portable' in (ROOT / ".ci" / "build_llamacpp").read_text()
