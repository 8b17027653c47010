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


def _options():
    import argparse

    from openfirst.cli import build_parser

    out = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.dest != "help":
                out.append((" ".join(path), action))

    walk(build_parser(), [])
    return out


def test_every_option_has_help_text():
    missing = [f"{cmd} {a.option_strings or a.dest}" for cmd, a in _options() if not a.help]
    assert missing == []


# what each command needs besides the option under test (files that do not exist are fine: the point is that
# nothing, including the value check, ends in a traceback)
REQUIRED = {"train": ["routellm-gsm8k", "--out", "{tmp}/r"], "eval": ["--router", "{tmp}/r", "routellm-gsm8k"],
            "route": ["--router", "{tmp}/r", "q"], "extract": ["--schema", "a int", "x"],
            "bench router": ["routellm-gsm8k"], "bench extraction": ["snips"], "serve": ["--config", "{tmp}/c.toml"],
            "compile": ["--task", "{tmp}/t.py:T"]}


@pytest.mark.parametrize("cmd,flag", sorted({(c, a.option_strings[-1]) for c, a in _options()
                                           if a.option_strings and a.type in (int, float)}))
def test_an_out_of_range_number_is_a_one_line_error(cmd, flag, capsys, tmp_path, monkeypatch):
    """Every numeric option with an absurd value, on a command line otherwise complete: a one-line error
    (argparse's or openfirst's) and no traceback, before any model or data loads."""
    from openfirst.cli import main
    from openfirst.compiler import cli as compiler_cli

    monkeypatch.setattr(compiler_cli, "_backend", lambda args: pytest.fail("a model was loaded"))
    required = [x.format(tmp=tmp_path) for x in REQUIRED.get(cmd, [])]
    try:
        code = main([*cmd.split(), *required, f"{flag}=-1e308"])
    except SystemExit as exc:  # argparse: not a number of that type
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "error:" in err.strip().splitlines()[-1]
