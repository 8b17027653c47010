"""The accuracy-against-cost report: baselines on the same queries, JSON without curves, Markdown, a PNG plot."""

import json

import numpy as np

from openfirst.router.policy import Target
from openfirst.router.report import build_report, markdown_table, plot_report, public_json

YL = np.array([1, 0, 1, 0, 1, 0, 1, 1], float)
YF = np.ones(8)
SCORE = 1 - YL + np.linspace(0, 0.1, 8)  # a perfect ranking
TEXTS = [f"query {'x' * i}" for i in range(8)]


def report():
    return build_report(SCORE, YL, YF, np.full(8, 0.001), np.full(8, 0.01), TEXTS,
                        Target(kind="frontier_share", value=0.5))


def test_perfect_ranking_matches_the_oracle_and_beats_random():
    r = report()
    rows = {row["router"]: row for row in r["baselines"]}
    assert r["apgr"] == rows["oracle"]["apgr"] and rows["random"]["apgr"] == 0.5
    assert r["operating_point"]["frontier_share"] == 0.5 and r["operating_point"]["expected_accuracy"] == 1.0
    assert rows["always_local"]["accuracy"] == 0.625 and rows["always_frontier"]["accuracy"] == 1.0


def test_json_markdown_and_plot(tmp_path):
    r = report()
    data = public_json(r)
    json.dumps(data, allow_nan=True)  # serialisable: the curves are left out
    assert "_curves" not in data and "baselines" in data
    md = markdown_table(r, "perfect")
    assert md.startswith("###") and "query_length" in md and "oracle" in md
    plot_report(r, tmp_path / "p.png", "perfect")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
