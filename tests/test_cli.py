"""The console script's own conventions."""

import pytest

from openfirst import __version__
from openfirst.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"openfirst {__version__}"
