"""The console script's own conventions."""

import pytest

from openfirst import __version__
from openfirst.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"openfirst {__version__}"


@pytest.mark.parametrize("flags", [["--budget", "-1"], ["--target-frontier-share", "nan"],
                                   ["--target-frontier-share", "1.5"], ["--target-quality", "-2"]])
def test_an_out_of_range_option_is_one_line_not_a_traceback(flags, capsys, tmp_path):
    """Reported: `--budget -1` and `--target-frontier-share nan` printed pydantic tracebacks."""
    assert main(["train", "routellm-gsm8k", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("openfirst: error:") and "\n" not in err and "Traceback" not in err
