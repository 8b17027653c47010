"""CPU and memory facts read from /proc files (samples written here: an AMX machine and an AVX2-only one)."""

from openfirst.core.machine import memory_gib, this_cpu

AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: ignored: only the first processor is read
"""
AVX2 = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2
"""


def test_an_amx_machine_has_fast_bfloat16_and_its_instruction_sets_are_listed_in_order(tmp_path):
    (tmp_path / "cpuinfo").write_text(AMX)
    cpu = this_cpu(tmp_path / "cpuinfo")
    assert cpu.model == "Intel(R) Xeon(R) Processor"
    assert cpu.fast_bfloat16 and cpu.has("amx_int8", "avx2")  # AMX bfloat16 tiles
    assert cpu.engine_features[:3] == ["sse4_2", "avx", "avx2"] and cpu.engine_features[-1] == "amx_bf16"
    assert cpu.cores >= 1


def test_an_avx2_only_machine_has_no_fast_bfloat16(tmp_path):
    (tmp_path / "cpuinfo").write_text(AVX2)
    cpu = this_cpu(tmp_path / "cpuinfo")
    assert not cpu.fast_bfloat16 and cpu.has("avx2") and not cpu.has("avx512f")


def test_a_missing_cpuinfo_gives_an_unknown_cpu_not_an_error(tmp_path):
    cpu = this_cpu(tmp_path / "absent")
    assert cpu.flags == frozenset() and not cpu.fast_bfloat16


def test_memory_is_read_in_gib(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       25165824 kB\nMemFree: 1 kB\nMemAvailable:   12582912 kB\n")
    assert memory_gib(tmp_path / "meminfo") == (24.0, 12.0)
    assert memory_gib(tmp_path / "absent") == (None, None)
