"""Router artifacts: a directory with `router.json` (config, metrics, versions,
checksums) and `arrays.npz` (numeric arrays, loaded with allow_pickle=False).

No pickle, no joblib. A tampered file (checksum mismatch) or an incompatible
artifact (format version, embedding dimension, unknown family) is refused. With `$OPENFIRST_ARTIFACT_KEY`
set, saving signs the checksums (HMAC-SHA256) and loading refuses an artifact whose signature is missing or
wrong: edits with recomputed checksums are caught too.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from openfirst.router.errors import ArtifactError

FORMAT = "openfirst-router"
FORMAT_VERSION = 1
CONFIG_FILE = "router.json"
ARRAYS_FILE = "arrays.npz"


def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("openfirst", "numpy", "scikit-learn", "optuna", "sentence-transformers", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signing_key() -> bytes | None:
    key = os.environ.get("OPENFIRST_ARTIFACT_KEY")
    return key.encode() if key else None


def _sign(key: bytes, config_sha256: str, arrays_sha256: str) -> str:
    return hmac.new(key, f"{FORMAT}:{config_sha256}:{arrays_sha256}".encode(), hashlib.sha256).hexdigest()


def save_artifact(path: Path | str, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write atomically: a temporary sibling directory renamed into place."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    body = dict(config, format=FORMAT, format_version=FORMAT_VERSION, versions=library_versions(),
                arrays_sha256=hashlib.sha256(blob).hexdigest())
    body["config_sha256"] = hashlib.sha256(canonical_json(body)).hexdigest()
    key = signing_key()
    if key is not None:
        body["signature"] = _sign(key, body["config_sha256"], body["arrays_sha256"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / ARRAYS_FILE).write_bytes(blob)
        (tmp / CONFIG_FILE).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        if path.exists():
            if not (path / CONFIG_FILE).exists():
                raise ArtifactError(f"{path} exists and is not a router artifact; refusing to overwrite it")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_artifact(path: Path | str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    cfg_file, arr_file = path / CONFIG_FILE, path / ARRAYS_FILE
    if not cfg_file.is_file() or not arr_file.is_file():
        raise ArtifactError(f"{path} is not a router artifact (needs {CONFIG_FILE} and {ARRAYS_FILE})",
                            hint="train one with `openfirst train LOGS --out DIR`")
    try:
        body = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{cfg_file}: not valid JSON ({exc})") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ArtifactError(f"{cfg_file}: not an openfirst router config")
    if body.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {body.get('format_version')!r}, this openfirst reads {FORMAT_VERSION}",
            hint="retrain the router with this version of openfirst",
        )
    signature = body.pop("signature", None)
    claimed = body.pop("config_sha256", None)
    key = signing_key()
    if key is not None and not (isinstance(signature, str) and isinstance(claimed, str) and hmac.compare_digest(
            signature, _sign(key, claimed, str(body.get("arrays_sha256"))))):
        raise ArtifactError(f"{path}: {'no' if signature is None else 'a wrong'} signature for this "
                            "OPENFIRST_ARTIFACT_KEY; refusing to load",
                            hint="load only artifacts signed with your key (train with the key set)")
    if claimed != hashlib.sha256(canonical_json(body)).hexdigest():
        raise ArtifactError(f"{cfg_file} was modified after training (config checksum mismatch); refusing to load",
                            hint="retrain, or restore the original file")
    blob = arr_file.read_bytes()
    if hashlib.sha256(blob).hexdigest() != body.get("arrays_sha256"):
        raise ArtifactError(f"{arr_file} was modified after training (checksum mismatch); refusing to load",
                            hint="retrain, or restore the original file")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ArtifactError(f"{arr_file}: unreadable arrays ({exc})") from exc
    return body, arrays
