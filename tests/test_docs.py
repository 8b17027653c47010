"""The documentation is checked like code: the site builds with no broken link or anchor (mkdocs --strict), every
Python import in it resolves, every `openfirst` command in it parses with today's CLI, every benchmark script it
names exists, and the layout page names the real subpackages."""

import importlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(kind: str) -> list[str]:
    return [b for page in PAGES for b in re.findall(rf"```{kind}\n(.*?)```", page.read_text(), flags=re.S)]


def commands() -> list[list[str]]:
    """`openfirst ...` command lines of the bash blocks (continuations joined, comments dropped); synopsis lines
    with placeholders (`[...]`, `|`, `...`) are left out."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if not words or not words[0].endswith("openfirst") or any(
                        w.startswith("[") or "|" in w or w == "..." for w in words):
                    continue
                out.append(words[1:])
    return out


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail("mkdocs is not installed: .ci/setup installs it (openfirst[docs])")
    run = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]  # (not -q: mkdocs then stops counting warnings)


def test_every_import_in_the_python_examples_resolves():
    imports = [line.strip() for block in blocks("python") for line in block.splitlines()
               if line.startswith(("from openfirst", "import openfirst"))]
    assert len(imports) >= 5
    for line in imports:
        exec(line, {})  # noqa: S102 - the documentation's own import lines


@pytest.mark.parametrize("argv", commands(), ids=shlex.join)
def test_every_command_in_the_docs_parses(argv):
    from openfirst.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`openfirst {shlex.join(argv)}` no longer parses (exit {exc.code})")


def test_there_are_commands_to_check_and_the_benchmark_scripts_named_exist():
    assert len(commands()) >= 15
    named = {m for page in PAGES for m in re.findall(r"benchmarks/[\w./-]+\.(?:sh|py)", page.read_text())}
    assert named and not [n for n in sorted(named) if not (ROOT / n).exists()]


def test_layout_page_names_real_subpackages():
    names = re.findall(r"^\w+/\s+(openfirst\.\w+)", (ROOT / "docs" / "layout.md").read_text(), flags=re.M)
    assert len(names) >= 7
    for name in names:
        assert importlib.import_module(name).__name__ == name
