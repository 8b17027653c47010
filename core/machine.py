"""Facts about the machine at hand: CPU model and instruction sets, cores, memory (Linux `/proc`, stdlib only).

Engine defaults depend on them (vLLM's dtype on CPU, llama.cpp's threads), and `openfirst doctor` reports them.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

# the x86-64 instruction sets that matter to the local engines, in the order users read them
X86_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class CPU:
    model: str
    arch: str
    cores: int  # usable by this process (affinity), not the host's
    flags: frozenset[str] = field(default_factory=frozenset)

    def has(self, *flags: str) -> bool:
        return all(f in self.flags for f in flags)

    @property
    def engine_features(self) -> list[str]:
        """The instruction sets of `X86_FEATURES` this CPU has."""
        return [f for f in X86_FEATURES if f in self.flags]

    @property
    def fast_bfloat16(self) -> bool:
        """AMX bfloat16 tiles, where bfloat16 beat float32 in vLLM's CPU build (measured on a Sapphire-Rapids-class
        Xeon: 1.3x at batch 1, 1.9x at batch 16; benchmarks/results/local-engines.md). Without them float32 is
        kept: on AVX2 bfloat16 was about 4x slower, and AVX-512-BF16 alone was not measured."""
        return self.has("amx_bf16")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def this_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CPU:
    info = _cpuinfo(cpuinfo)
    flags = frozenset((info.get("flags") or info.get("Features") or "").split())
    model = info.get("model name") or info.get("Model") or platform.processor() or "unknown"
    return CPU(model, platform.machine(), usable_cores(), flags)


def memory_gib(meminfo: Path = Path("/proc/meminfo")) -> tuple[float | None, float | None]:
    """(total, available) GiB of RAM; None where /proc/meminfo is missing."""
    values: dict[str, float] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return values.get("MemTotal"), values.get("MemAvailable")


def cpu_summary() -> dict[str, object]:
    """What a benchmark records of the CPU its numbers came from (AVX2-only and AVX-512/AMX machines differ)."""
    cpu = this_cpu()
    return {"cpu": cpu.model, "cores": cpu.cores, "features": cpu.engine_features}


def cpu_line(summary: dict) -> str:
    """`cpu_summary()` in words, for a Markdown report."""
    return f"{summary['cores']} cores of {summary['cpu']} ({', '.join(summary['features'])})"
