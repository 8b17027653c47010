"""The llama.cpp build openfirst runs on: the instruction sets it was compiled with, whether they are portable,
and a check that it decodes the embedded model (in a subprocess, so a crash is reported rather than suffered).

`.ci/build_llamacpp` builds llama-cpp-python for every x86-64 CPU with AVX2 (`PORTABLE_X86`); a native build
compiles in whatever the build machine has, such as AMX kernels that crashed on AMX machines.
`python -m openfirst.compiler.backends.llamacpp_build --check` runs after the build (`.ci/setup`).
"""

from __future__ import annotations

import argparse
import re
import sys

# what .ci/build_llamacpp asks for on x86-64, as llama.cpp names it in its system info (SSE3/SSSE3 come with any
# x86-64 build; SSE4.2, also asked for, is not reported)
PORTABLE_X86 = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"})
# instruction sets llama.cpp's system info may name (everything else it prints is not an instruction set)
X86_ISA = PORTABLE_X86 | {"AVX_VNNI", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8",
                          "AMX_BF16", "AMX_TILE"}


def system_info() -> str:
    """llama.cpp's own account of its build (`llama_print_system_info`)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace")


def compiled_features(info: str) -> set[str]:
    """The names llama.cpp's system info reports as on (`AVX2 = 1`)."""
    return {m.group(1) for m in re.finditer(r"([A-Z0-9_]+) = 1", info)}


def beyond_portable(features: set[str]) -> list[str]:
    """Instruction sets compiled in beyond the portable x86-64 build's (empty: the build runs on any AVX2 CPU)."""
    return sorted((features & X86_ISA) - PORTABLE_X86)


def check(timeout_s: float = 300.0) -> int:
    """Print what the build has and whether it decodes; 0 when it is portable and decodes."""
    from openfirst.compiler.backends.probe import HINTS, probe

    try:
        info = system_info()
    except ImportError as exc:
        print(f"llama.cpp: NOT INSTALLED ({exc}); {HINTS['llama.cpp']}", file=sys.stderr)
        return 1
    features = compiled_features(info)
    beyond = beyond_portable(features)
    isa = sorted(features & X86_ISA)
    print(f"llama.cpp build: {', '.join(isa) or 'no x86 instruction sets reported'}")
    status = 0
    if beyond:
        print(f"llama.cpp: NOT PORTABLE: compiled with {', '.join(beyond)} (runs only on CPUs that have them); "
              f"{HINTS['llama.cpp']}", file=sys.stderr)
        status = 1
    result = probe("llama.cpp", max_tokens=16, timeout_s=timeout_s)
    if result.ok:
        print(f"llama.cpp: decodes the embedded model: {result.tokens_per_s} tok/s, quick start -> "
              f"{result.extraction}")
    else:
        print(f"llama.cpp: CANNOT DECODE ({result.status}: {result.detail}); {result.hint}", file=sys.stderr)
        status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openfirst.compiler.backends.llamacpp_build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the installed build (portable, decodes)")
    parser.add_argument("--portable", action="store_true",
                        help="exit 0 when llama-cpp-python is installed and its build is portable, else 1 (silent; "
                             "needs nothing of openfirst installed: .ci/build_llamacpp runs this file by path)")
    args = parser.parse_args(argv)
    if args.portable:
        try:
            return 1 if beyond_portable(compiled_features(system_info())) else 0
        except ImportError:
            return 1
    if not args.check:
        print(system_info())
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main())
