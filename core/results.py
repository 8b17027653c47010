"""One way a benchmark command writes its results: JSON, Markdown and a PNG plot under `--out-dir`, then prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable


def write_bench_results(out: dict[str, Any], out_dir: Path, name: str, markdown: Callable[[dict], str],
                        plot: Callable[[dict, Path], None], as_json: bool) -> int:
    """Record the command, write `name`.{json,md,png} into `out_dir`, print the JSON or the Markdown; 0."""
    out["command"] = "openfirst " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("openfirst") else None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    md = markdown(out)
    (out_dir / f"{name}.md").write_text(md)
    plot(out, out_dir / f"{name}.png")
    print(json.dumps(out, indent=2) if as_json else md)
    return 0
