"""`openfirst data download NAME`: fetch the public files at their pinned commits, verify sha256.

Files are written to a temporary name and renamed only after the checksum matches,
so an interrupted or corrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from openfirst.router.errors import DataError

SOURCES = {"routellm-gsm8k": ("routellm", "gsm8k/"), "routellm-mmlu": ("routellm", "mmlu/"),
           "routellm-mt-bench": ("routellm", "mt_bench/"), "routellm": ("routellm", ""), "llmrouter": ("llmrouter", "")}


def manifest() -> dict[str, Any]:
    return json.loads(resources.files("router").joinpath("data_manifest.json").read_text())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, data_dir: Path, base_url: str | None = None, timeout: float = 60.0,
             show_progress: bool = True) -> list[Path]:
    """Download data set `name` into `data_dir`; files already present with the right hash are kept."""
    if name not in SOURCES:
        raise DataError(f"unknown data set {name!r}", hint="one of: " + ", ".join(SOURCES))
    source, prefix = SOURCES[name]
    spec = manifest()[source]
    url_root = base_url or os.environ.get("OPENFIRST_DATA_URL_" + source.upper()) or spec["base_url"]
    files = {rel: meta for rel, meta in spec["files"].items() if rel.startswith(prefix)}
    out_dir = Path(data_dir) / spec["dir"]
    written = []
    for rel, meta in tqdm(sorted(files.items()), desc=f"download {name}", unit="file", disable=not show_progress):
        dest = out_dir / rel
        if dest.is_file() and sha256_file(dest) == meta["sha256"]:
            written.append(dest)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        url = url_root.rstrip("/") + "/" + rel
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"download of {url} failed: {exc}", hint="check the network, or copy the files by hand",
                            retryable=True) from exc
        got = sha256_file(tmp)
        if got != meta["sha256"]:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{url}: sha256 {got} does not match the pinned {meta['sha256']}; file discarded")
        os.replace(tmp, dest)
        written.append(dest)
    return written
