"""An in-process transformers model as the local backend (a tiny random-weight model: fast, offline),
and `openfirst serve --check` on a config file."""

import json

import httpx
import openai
import pytest

from openfirst.cli import main
from tests.helpers import TASK, live_service, make_config

pytestmark = pytest.mark.slow


def test_in_process_local_model_extract_and_chat(tmp_path, tiny_model_dir):
    local = {"kind": "transformers", "model": str(tiny_model_dir), "device": "cpu",
             "price": {"input_per_mtok": 0.5, "output_per_mtok": 0.5}}
    cfg = make_config(tmp_path, local=local, program={"max_tokens": 48, "max_retries": 0})
    with live_service(cfg) as (url, service):
        assert service.pipeline.programs["support_ticket"]["local"].grammar is not None  # compiled for its tokenizer
        r = httpx.post(f"{url}/v1/tasks/support_ticket/extract", json={"inputs": ["parcel lost", "refund"]},
                       timeout=120)
        assert r.status_code == 200
        for item in r.json()["results"]:
            assert item["target"] == "local" and item["decided_by"] == "default"  # no router, no frontier
            # random weights: a schema-valid output, or a typed error (never invalid JSON passed on)
            assert ("output" in item) != ("error" in item)
            if "error" in item:
                assert item["error"]["type"] in {"IncompleteOutput", "OutputValidationError"}
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="openfirst-router", max_tokens=8,
                                               messages=[{"role": "user", "content": "hello"}])
        assert reply.usage.completion_tokens >= 1 and reply.model_extra["openfirst"]["cost_usd"] > 0
        chunks = list(client.chat.completions.create(model="openfirst-router", max_tokens=8, stream=True,
                                                     messages=[{"role": "user", "content": "hello"}]))
        assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
        deltas = [c.choices[0].delta.content for c in chunks[1:-1]]
        assert len(deltas) >= 2  # streamed as the tokens are chosen, not in one piece
        assert "".join(deltas) == reply.choices[0].message.content  # greedy: the same answer as unstreamed


def test_serve_check_validates_a_config_file(tmp_path, router_dir, capsys):
    path = tmp_path / "openfirst.toml"
    path.write_text(f'[tasks]\nticket = "{TASK}"\n[local]\nkind = "server"\nmodel = "m"\n'
                    f'base_url = "http://127.0.0.1:9/v1"\n[router]\nartifact = "{router_dir}"\n'
                    f'[log]\ndecisions = "decisions.jsonl"\n')
    assert main(["serve", "--config", str(path), "--check"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["tasks"] == ["ticket"] and described["router"] == str(router_dir)
    path.write_text(path.read_text().replace(str(router_dir), str(tmp_path / "missing")))
    assert main(["serve", "--config", str(path), "--check"]) == 2
    assert "router artifact" in capsys.readouterr().err
