from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "routellm").is_dir():
        pytest.fail(f"the shared data sets are missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One embedding cache for the whole test session (never the user's)."""
    path = tmp_path_factory.mktemp("openfirst-cache")
    os.environ["OPENFIRST_CACHE"] = str(path)
    return path
