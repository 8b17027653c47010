"""Many-model logs end to end with MiniLM (slow): `openfirst bench router` writes RouterBench's report keys,
`openfirst train` a many-model router at a budget, `openfirst route` names the chosen model, every model's
P(success) and cost, and imports no torch, sentence-transformers or scikit-learn for one query."""

import json
import subprocess
import sys

import numpy as np
import pytest

from openfirst.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def multi_log(tmp_path, cache_dir):
    rng = np.random.default_rng(0)
    path = tmp_path / "three-models.jsonl"
    with open(path, "w") as fh:
        for i in range(120):
            billing = i % 2 == 1
            text = f"billing refund invoice number {i}" if billing else f"will it rain in city {i} tomorrow"
            fh.write(json.dumps({"id": str(i), "query": text, "costs": {"a": 0.001, "b": 0.001, "c": 0.01},
                                 "scores": {"a": float(not billing and rng.random() < 0.9),
                                            "b": float(billing and rng.random() < 0.9),
                                            "c": float(rng.random() < 0.8)}}) + "\n")
        fh.write(json.dumps({"id": "partial", "query": "not run by c", "scores": {"a": 1, "b": 0}}) + "\n")
    return path


def test_bench_train_and_route_on_a_many_model_log(multi_log, tmp_path, capsys):
    fast = ["--trials", "2", "--outer-folds", "2", "--inner-folds", "2", "--no-progress"]
    progress = [a for a in fast if a != "--no-progress"]  # progress and notices must not spoil the JSON
    assert main(["bench", "router", str(multi_log), *progress, "--out-dir", str(tmp_path / "res"), "--json"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out)
    assert "1 records lack a model's score" in printed.err and "outer fold 2/2" in printed.err
    assert set(out) >= {"curve", "aiq", "best_single", "cost_to_match_best_single", "baselines"}
    assert set(out["baselines"]) >= {"knn", "mlp", "oracle", "zero"} and out["best_single"]["model"] == "c"
    assert out["aiq"] > out["baselines"]["zero"]["aiq"] and (tmp_path / "res" / "router-multi-three-models.png").is_file()
    assert all(set(p) == {"cost", "accuracy"} for p in out["curve"])
    router = tmp_path / "router"
    # 4 trials: 2 can end on an MLP that has not separated the two kinds of query yet
    assert main(["train", str(multi_log), "--out", str(router), "--trials", "4", *fast[2:], "--budget", "0.002"]) == 0
    capsys.readouterr()
    probe = ("import json, sys; from openfirst.cli import main; main(['route', '--router', sys.argv[1], "
             "'billing refund invoice number 7']); print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] "
             "in ('torch', 'sentence_transformers', 'sklearn'))))")
    run = subprocess.run([sys.executable, "-c", probe, str(router)], capture_output=True, text=True, timeout=120)
    decision, heavy = [json.loads(line) for line in run.stdout.strip().splitlines()]
    assert decision["model"] == "b" and set(decision["models"]) == {"a", "b", "c"} and heavy == []
    assert main(["route", "--router", str(router), "--threshold", "0.3", "x"]) == 2  # no threshold here
    capsys.readouterr()
    assert main(["eval", "--router", str(router), str(multi_log), "--json", "--no-progress"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["operating_point"]["cost"] <= 0.002 + 1e-9 and set(ev["baselines"]) >= {"knn", "mlp", "oracle", "zero"}
    serve_and_learn_from_it(router, tmp_path, capsys)


def serve_and_learn_from_it(router, tmp_path, capsys):
    """The service routes across the registry with the trained router (its "a" is the service's local model, "b"
    a cheap API, "c" the frontier); its decision log, joined with labels of every model, is a many-model log that
    `openfirst train` learns from."""
    from openfirst.service.config import ServiceConfig
    from openfirst.service.service import Service
    from tests.helpers import TASK, call, down_local

    nowhere = down_local()["base_url"]
    config = ServiceConfig(tasks={"support_ticket": TASK}, local=down_local(),
                           frontier={"model": "c-model", "base_url": nowhere},
                           models={"b": {"model": "b-model", "base_url": nowhere, "kind": "frontier"}},
                           router={"artifact": str(router), "model_names": {"a": "local", "c": "frontier"}},
                           log={"decisions": str(tmp_path / "decisions.jsonl")})
    service = Service.from_config(config)
    texts = [f"billing refund invoice number {i}" for i in range(200, 230)]
    texts += [f"will it rain in city {i} tomorrow" for i in range(200, 230)]
    routes = [call(service, "POST", "/v1/route", json={"input": t}).json() for t in texts]
    service.close()
    assert {r["target"] for r in routes[:30]} == {"b"} and set(routes[0]["predictions"]) == {"local", "b", "frontier"}
    assert {r["target"] for r in routes[30:]} == {"local"}
    labels = tmp_path / "labels.jsonl"
    # a third of the answers labelled only for the model that answered (live traffic), the rest on every model
    labels.write_text("".join(json.dumps({"id": r["id"], "score": 1} if i % 3 == 0 else
                                         {"id": r["id"], "scores": {"local": int(i >= 30), "b": int(i < 30),
                                                                    "frontier": 1}}) + "\n"
                              for i, r in enumerate(routes)))
    joined = tmp_path / "joined.jsonl"
    assert main(["eval", "--decisions", str(tmp_path / "decisions.jsonl"), str(labels), "--joined-out", str(joined),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["by_model"]["b"]["accuracy"] == 1.0 and report["joined_out"]["records"] == 60
    assert main(["train", str(joined), "--out", str(tmp_path / "retrained"), "--trials", "2", "--outer-folds", "2",
                 "--inner-folds", "2", "--no-progress", "--budget", "0.5", "--json"]) == 0
    trained = capsys.readouterr()
    assert "20 records lack a model's score; training on all 60" in trained.err
    assert json.loads(trained.out)["records_evaluated"] == 40
