"""Where openfirst keeps its caches: `$OPENFIRST_CACHE`, else `~/.cache/openfirst`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$OPENFIRST_CACHE` (or `~/.cache/openfirst`) joined with `parts`; read at each call, so tests and users can
    point it elsewhere at any time."""
    root = Path(os.environ.get("OPENFIRST_CACHE") or Path.home() / ".cache" / "openfirst")
    return root.joinpath(*parts)
