"""The wheel installs one package, `openfirst`, and nothing generic at the top of site-packages."""

import subprocess
import sys
import zipfile

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_wheel_holds_only_the_openfirst_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("openfirst-*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert top == {"openfirst", next(t for t in top if t.endswith(".dist-info"))}
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("openfirst/cli.py", "openfirst/core/errors.py", "openfirst/router/api.py",
                   "openfirst/compiler/program.py", "openfirst/service/app.py", "openfirst/router/data_manifest.json"):
        assert module in names
    assert not any(n.startswith(("openfirst/tests", "openfirst/benchmarks", "openfirst/datasets")) for n in names)
