"""Merged transformers weights -> a GGUF llama.cpp serves, through llama.cpp's own conversion code, then quantised
like the base model through llama.cpp's quantiser (in llama-cpp-python).

The conversion code (`convert_hf_to_gguf.py`, its `conversion` package and `gguf-py`) ships in the llama-cpp-python
source distribution on the registry. `python -m openfirst.finetune.gguf_export --fetch` (run by `.ci/setup`) copies
those files out of it once, for the installed llama-cpp-python version, into the environment
(`<sys.prefix>/share/openfirst/llama.cpp-convert-<version>/`, or `$OPENFIRST_LLAMACPP_CONVERTER`); fine-tuning needs
no network afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from openfirst.finetune.errors import FinetuneError

CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
# GGUF file types llama.cpp's quantiser writes, by the name of `general.file_type`
QUANT_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "BF16": 32}

_RUNNER = """
import runpy, sys
converter, fallback = sys.argv[1], sys.argv[2]
sys.path.insert(0, converter)
sys.path.insert(1, converter + "/gguf-py")
from conversion import base
known = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:  # a tokenizer llama.cpp's table does not know: the base model's pre-tokenizer
        return fallback
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [converter + "/convert_hf_to_gguf.py"] + sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def llamacpp_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise FinetuneError("llama-cpp-python is not installed: it converts and quantises the GGUF",
                            hint="pip install 'openfirst[llamacpp]'") from None


def converter_dir() -> Path:
    """`$OPENFIRST_LLAMACPP_CONVERTER`, else the copy in this environment for the installed llama-cpp-python."""
    env = os.environ.get("OPENFIRST_LLAMACPP_CONVERTER")
    return Path(env) if env else Path(sys.prefix) / "share" / "openfirst" / f"llama.cpp-convert-{llamacpp_version()}"


def have_converter() -> bool:
    d = converter_dir()
    return (d / "convert_hf_to_gguf.py").is_file() and (d / "conversion").is_dir() and (d / "gguf-py").is_dir()


def fetch_converter(sdist: Path | None = None) -> Path:
    """Copy the conversion code out of llama-cpp-python's source distribution (downloaded from the package
    registry when `sdist` is None) into `converter_dir()`."""
    out = converter_dir()
    if have_converter():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                   f"llama-cpp-python=={llamacpp_version()}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if done.returncode or not found:
                raise FinetuneError(f"cannot download llama-cpp-python's source: {done.stderr.strip()[-500:]}",
                                    hint="pass --sdist PATH of llama_cpp_python-<version>.tar.gz")
            sdist = found[0]
        staging = Path(tmp) / "converter"
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                _, _, rest = m.name.partition("/vendor/llama.cpp/")
                if rest and any(rest == f or rest.startswith(f) for f in CONVERTER_FILES) and (m.isfile() or m.isdir()):
                    m.name = rest
                    members.append(m)
            if not members:
                raise FinetuneError(f"{sdist} holds no llama.cpp conversion code")
            tar.extractall(staging, members=members, filter="data")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out) if not out.exists() else None
    if not have_converter():
        raise FinetuneError(f"the conversion code in {out} is incomplete", hint=f"remove {out} and fetch again")
    return out


def gguf_file_type(path: Path) -> str:
    """The name of a GGUF's `general.file_type` (e.g. Q4_1), read without loading the model."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is None:
        return "F32"
    value = int(field.parts[-1][0])
    return next((k for k, v in QUANT_TYPES.items() if v == value), f"type {value}")


def gguf_metadata(path: Path, key: str) -> str | None:
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get(key)
    return None if field is None else bytes(field.parts[-1]).decode("utf-8", errors="replace")


def export_gguf(merged_dir: Path, out: Path, quant: str = "Q4_1", pre_tokenizer: str = "gpt-2") -> Path:
    """Convert `merged_dir` (a transformers Llama folder) to float32 GGUF with llama.cpp's converter, then quantise
    to `quant` (a `QUANT_TYPES` name). `pre_tokenizer`: llama.cpp's pre-tokenizer name, used only when its
    converter does not recognise the tokenizer (the base model's, from its GGUF)."""
    if quant not in QUANT_TYPES:
        raise FinetuneError(f"unknown GGUF type {quant!r}", hint="one of " + ", ".join(QUANT_TYPES))
    if not have_converter():
        raise FinetuneError(f"llama.cpp's conversion code is not in {converter_dir()}",
                            hint="python -m openfirst.finetune.gguf_export --fetch (once, needs the package registry)")
    out.parent.mkdir(parents=True, exist_ok=True)
    f32 = out.with_name(out.stem + ".f32.gguf")
    cmd = [sys.executable, "-c", _RUNNER, str(converter_dir()), pre_tokenizer, str(merged_dir), "--outfile", str(f32),
           "--outtype", "f32"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_LOCAL_GGUF": ""})
    if done.returncode or not f32.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-6:])
        raise FinetuneError(f"llama.cpp's converter failed on {merged_dir}:\n{tail}")
    if quant == "F32":
        f32.replace(out)
        return out
    try:
        quantise(f32, out, quant)
    finally:
        f32.unlink(missing_ok=True)
    return out


_QUANTISER = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype, params.nthread = int(sys.argv[3]), int(sys.argv[4])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def quantise(src: Path, dst: Path, quant: str) -> None:
    """llama.cpp's quantiser (through llama-cpp-python) in a subprocess: its log stays out of the user's terminal and
    a native crash is an error, not the end of the run."""
    from openfirst.core.machine import usable_cores

    cmd = [sys.executable, "-c", _QUANTISER, str(src), str(dst), str(QUANT_TYPES[quant]), str(usable_cores())]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode or not dst.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise FinetuneError(f"llama.cpp could not quantise {src} to {quant} (exit {done.returncode}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openfirst.finetune.gguf_export",
                                description="fetch llama.cpp's GGUF conversion code (once, from the registry)")
    p.add_argument("--fetch", action="store_true", help="copy the conversion code out of llama-cpp-python's sdist")
    p.add_argument("--sdist", type=Path, default=None, help="a downloaded llama_cpp_python-<version>.tar.gz")
    args = p.parse_args(argv)
    if args.fetch or args.sdist:
        try:
            print(f"llama.cpp conversion code: {fetch_converter(args.sdist)}")
        except FinetuneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    print(f"{converter_dir()}: {'present' if have_converter() else 'missing (run with --fetch)'}")
    return 0 if have_converter() else 1


if __name__ == "__main__":
    sys.exit(main())
