"""Router artifacts: no pickle, tampering and incompatibility refused, atomic saves."""

import json

import numpy as np
import pytest

from openfirst.router.api import Router
from openfirst.router.artifact import ARRAYS_FILE, CONFIG_FILE
from openfirst.router.errors import ArtifactError

def test_no_pickle_in_arrays(tmp_path, fitted_router):
    fitted_router.save(tmp_path / "r")
    with np.load(tmp_path / "r" / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_tampered_arrays_are_refused(tmp_path, fitted_router):
    fitted_router.save(tmp_path / "r")
    path = tmp_path / "r" / ARRAYS_FILE
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="modified"):
        Router.load(tmp_path / "r")


def saved_with_config_edit(router, tmp_path, key, value):
    """Save a router, then change one key of its router.json by hand."""
    router.save(tmp_path / "r")
    path = tmp_path / "r" / CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg[key] = value
    path.write_text(json.dumps(cfg))
    return tmp_path / "r"


def test_tampered_config_is_refused(tmp_path, fitted_router):
    with pytest.raises(ArtifactError, match="modified"):
        Router.load(saved_with_config_edit(fitted_router, tmp_path, "threshold", -100.0))


def test_incompatible_version_and_missing_artifact(tmp_path, fitted_router):
    with pytest.raises(ArtifactError, match="format version"):
        Router.load(saved_with_config_edit(fitted_router, tmp_path, "format_version", 99))
    with pytest.raises(ArtifactError, match="not a router artifact"):
        Router.load(tmp_path / "nothing")


def test_save_refuses_to_overwrite_a_foreign_directory(tmp_path, fitted_router):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "precious.txt").write_text("keep me")
    with pytest.raises(ArtifactError):
        fitted_router.save(tmp_path / "r")
    assert (tmp_path / "r" / "precious.txt").read_text() == "keep me"


def test_signed_artifacts_refuse_edits_with_recomputed_checksums(tmp_path, fitted_router, monkeypatch):
    from openfirst.router.artifact import load_artifact, save_artifact

    monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", "team-secret")
    fitted_router.save(tmp_path / "r")
    assert Router.load(tmp_path / "r").threshold == fitted_router.threshold  # signed and verified
    config, arrays = load_artifact(tmp_path / "r")
    for k in ("config_sha256", "arrays_sha256", "format", "format_version", "versions", "signature"):
        config.pop(k, None)
    monkeypatch.delenv("OPENFIRST_ARTIFACT_KEY")
    save_artifact(tmp_path / "forged", dict(config, threshold=-5.0), arrays)  # checksums recomputed, no key
    monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", "team-secret")
    with pytest.raises(ArtifactError, match="no signature"):
        Router.load(tmp_path / "forged")
    monkeypatch.setenv("OPENFIRST_ARTIFACT_KEY", "another-key")
    with pytest.raises(ArtifactError, match="wrong signature"):
        Router.load(tmp_path / "r")
