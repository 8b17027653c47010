"""The CLI end to end on a small slice of real data (RouteLLM GSM8K), with the real MiniLM embedder."""

import json

import numpy as np
import pytest

from openfirst.cli import main
from openfirst.router.public_data import load_routellm_gsm8k
from tests.helpers import FAST_TRAIN

FAST = FAST_TRAIN


@pytest.fixture
def slice_log(gsm8k_slice):
    return gsm8k_slice


@pytest.fixture
def trained(trained_router):
    return trained_router


def run_json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_train_writes_artifact_with_metrics(trained):
    cfg = json.loads((trained / "router.json").read_text())
    op = cfg["operating_point"]
    assert op["target"] == {"kind": "frontier_share", "value": 0.3}
    assert op["frontier_share"] <= 0.3
    for key in ("apgr", "cpt50", "cpt80"):
        assert key in cfg["training"]["metrics"]
    assert cfg["embedder"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow
def test_route_arguments_and_stdin(trained, capsys, monkeypatch):
    import io

    assert main(["route", "--router", str(trained), "What is 2 + 2?"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["target"] in ("local", "frontier") and 0 <= d["p_success"] <= 1 and "threshold" in d
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": 1, "query": "a"}\n"b"\n'))
    assert main(["route", "--router", str(trained)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["id"] == 1 and len(lines) == 2


@pytest.mark.slow
def test_eval_json_keys(trained, slice_log, capsys):
    out = run_json(capsys, ["eval", "--router", str(trained), str(slice_log), "--json", "--no-progress"])
    for key in ("apgr", "cpt50", "cpt80", "operating_point", "baselines"):
        assert key in out
    # reported: eval "invented" a target; the operating point is the router's own threshold, and says so
    assert out["operating_point_from"] == "the router's saved threshold"
    assert out["operating_point"]["frontier_share"] == out["operating_point"]["target"]["value"]
    names = {b["router"] for b in out["baselines"]}
    assert {"random", "always_local", "always_frontier", "query_length", "oracle"} <= names


@pytest.mark.slow
def test_bench_router_writes_results(slice_log, tmp_path, capsys):
    out = run_json(capsys, ["bench", "router", str(slice_log), "--json", "--out-dir", str(tmp_path), *FAST])
    assert {"apgr", "cpt50", "cpt80", "cost_saving_vs_frontier"} <= set(out)
    assert 0.0 < out["apgr"] < 1.5
    stem = "router-gsm8k-slice"
    assert (tmp_path / f"{stem}.json").exists() and (tmp_path / f"{stem}.md").exists()
    assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_same_seed_same_router(slice_log, trained, tmp_path):
    again = tmp_path / "again"
    assert main(["train", str(slice_log), "--out", str(again), "--seed", "7", "--target-frontier-share", "0.3",
                 *FAST]) == 0
    a, b = (json.loads((p / "router.json").read_text()) for p in (trained, again))
    assert a["arrays_sha256"] == b["arrays_sha256"]
    assert a["threshold"] == b["threshold"]


def test_bad_log_fails_with_line_number(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "local_score": 1}\n{"query": "y", "local_score": 7}\n')
    assert main(["train", str(bad), "--out", str(tmp_path / "r"), *FAST]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


@pytest.mark.slow
def test_column_mapping_and_skip_bad_lines(tmp_path, data_dir, cache_dir, capsys):
    import csv

    log = load_routellm_gsm8k(data_dir).subset(np.arange(80))
    path = tmp_path / "team.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt", "ok_8b", "ok_gpt4"])
        w.writerows([q, bool(a), bool(b)] for q, a, b in zip(log.queries, log.local_score, log.frontier_score))
        w.writerow(["", True, True])
    cols = [str(path), "--query-column", "prompt", "--local-score-column", "ok_8b", "--frontier-score-column",
            "ok_gpt4", *FAST]
    assert main(["bench", "router", *cols, "--out-dir", str(tmp_path)]) == 2
    assert f"{path}:82: empty query" in capsys.readouterr().err
    assert main(["bench", "router", *cols, "--skip-bad-lines", "--json", "--out-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["records"] == 80
    assert "skipped 1 bad line" in captured.err


@pytest.mark.slow
def test_study_in_sqlite_storage_is_shared(slice_log, tmp_path):
    import optuna

    db = tmp_path / "study.db"
    argv = ["train", str(slice_log), "--out", str(tmp_path / "r"), "--storage", str(db), "--study-name", "team",
            "--trials", "2", "--outer-folds", "2", "--inner-folds", "2", "--no-progress"]
    assert main(argv) == 0
    assert main(argv) == 0  # a second worker adds its trials to the same study
    study = optuna.load_study(study_name="team-final", storage=f"sqlite:///{db}")
    assert len(study.trials) == 4


@pytest.mark.slow
def test_route_at_a_given_threshold_or_frontier_share(trained, slice_log, capsys):
    """Reported: route printed a z-scored threshold next to p_success, and took no frontier share or threshold."""
    d = run_json(capsys, ["route", "--router", str(trained), "--threshold", "-100", "What is 2 + 2?"])
    assert d["target"] == "frontier" and d["threshold"] == -100 and "z-scored" in d["score_kind"]
    d = run_json(capsys, ["route", "--router", str(trained), "--threshold", "100", "What is 2 + 2?"])
    assert d["target"] == "local"
    d = run_json(capsys, ["route", "--router", str(trained), "--frontier-share", "1.0", "--calibration",
                          str(slice_log), "What is 2 + 2?"])
    assert d["threshold"] <= d["score"] or d["target"] == "frontier"
    assert main(["route", "--router", str(trained), "--frontier-share", "0.3", "x"]) == 2  # no calibration
    assert main(["route", "--router", str(trained), "--frontier-share", "2", "--calibration", "y", "x"]) == 2


@pytest.mark.slow
def test_train_warns_and_strict_refuses_a_router_no_better_than_a_baseline(tmp_path, capsys):
    """Reported: a 50-line log gave an out-of-fold APGR below random and the router was saved without a word."""
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "tau", "rho"]
    log = tmp_path / "noise.jsonl"
    log.write_text("".join(json.dumps({"id": i, "query": " ".join(rng.choice(words, 5)),
                                       "local_score": int(rng.random() < 0.5), "frontier_score": 1}) + "\n"
                           for i in range(60)))
    out = tmp_path / "r"
    assert main(["train", str(log), "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    assert "WARNING: the router is not better than" in captured.err and "60 records" in captured.err
    assert "OPTIMISTIC" in captured.out and (out / "router.json").exists()
    assert main(["train", str(log), "--out", str(tmp_path / "strict"), "--strict", *FAST]) == 2
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_eval_at_a_given_frontier_share_or_threshold(trained, slice_log, capsys):
    out = run_json(capsys, ["eval", "--router", str(trained), str(slice_log), "--json", "--no-progress",
                            "--frontier-share", "0.5"])
    assert abs(out["operating_point"]["frontier_share"] - 0.5) < 0.05 and out["operating_point_from"] == "--frontier-share"
    out = run_json(capsys, ["eval", "--router", str(trained), str(slice_log), "--json", "--no-progress",
                            "--threshold", "1e9"])
    assert out["operating_point"]["frontier_share"] == 0.0


@pytest.mark.slow
def test_route_on_one_query_loads_neither_torch_nor_sentence_transformers(trained):
    """Reported: every CLI call loaded the models first (`route` took 14 s for one query). The start-up cost is
    measured in benchmarks/results/route-startup.md; here, what makes it: no torch, no sentence-transformers, and
    no scikit-learn (a saved router predicts in numpy: router/inference.py)."""
    import subprocess
    import sys

    code = ("import sys\nfrom openfirst.cli import main\nrc = main(['route', '--router', sys.argv[1], 'What is 2 + 2?'])\n"
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn') if m in sys.modules))\n"
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(trained)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    routed, loaded = done.stdout.strip().splitlines()[-2:]
    assert json.loads(routed)["target"] in ("local", "frontier") and loaded == "[]"
