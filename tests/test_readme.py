"""The README's Python examples import what they say, and its layout section matches the installed packages."""

import importlib
import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_every_import_in_the_python_examples_resolves():
    imports = [line.strip() for block in python_blocks() for line in block.splitlines()
               if line.startswith(("from openfirst", "import openfirst"))]
    assert len(imports) >= 5
    for line in imports:
        exec(line, {})  # noqa: S102 - the README's own import lines


def test_layout_section_names_real_subpackages():
    for name in re.findall(r"^\w+/\s+(openfirst\.\w+)", README, flags=re.M):
        assert importlib.import_module(name).__name__ == name
