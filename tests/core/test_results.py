"""One writer of benchmark results: JSON, Markdown and a plot, then the JSON or the Markdown printed."""

import json

from openfirst.core.results import write_bench_results


def test_results_are_written_in_every_format_and_printed(tmp_path, capsys):
    plots = []
    out = {"accuracy": 0.9}
    assert write_bench_results(out, tmp_path / "r", "demo", lambda o: f"# acc {o['accuracy']}\n",
                               lambda o, path: plots.append(path), as_json=False) == 0
    assert json.loads((tmp_path / "r" / "demo.json").read_text())["accuracy"] == 0.9
    assert (tmp_path / "r" / "demo.md").read_text() == "# acc 0.9\n" and plots == [tmp_path / "r" / "demo.png"]
    assert capsys.readouterr().out == "# acc 0.9\n\n"
    write_bench_results(out, tmp_path / "r", "demo", lambda o: "", lambda o, p: None, as_json=True)
    assert json.loads(capsys.readouterr().out)["accuracy"] == 0.9
