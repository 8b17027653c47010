import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from openfirst.router.download import download, manifest
from openfirst.router.errors import DataError


@pytest.fixture()
def mirror(tmp_path, data_dir):
    """A loopback HTTP server serving a copy of the RouteLLM GSM8K files."""
    root = tmp_path / "mirror"
    shutil.copytree(data_dir / "routellm" / "gsm8k", root / "gsm8k")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_sha256(mirror, tmp_path):
    _, url = mirror
    files = download("routellm-gsm8k", tmp_path / "data", base_url=url, show_progress=False)
    assert len(files) == 2
    spec = manifest()["routellm"]["files"]
    for f in files:
        rel = f.relative_to(tmp_path / "data" / "routellm").as_posix()
        assert hashlib.sha256(f.read_bytes()).hexdigest() == spec[rel]["sha256"]


def test_corrupted_download_is_discarded(mirror, tmp_path):
    root, url = mirror
    with open(root / "gsm8k" / "gsm8k_responses.csv", "a") as fh:
        fh.write("tampered\n")
    with pytest.raises(DataError, match="does not match"):
        download("routellm-gsm8k", tmp_path / "data", base_url=url, show_progress=False)
    leftovers = list((tmp_path / "data").rglob("gsm8k_responses.csv*"))
    assert leftovers == []


def test_unreachable_source_is_retryable(tmp_path):
    with pytest.raises(DataError) as err:
        download("llmrouter", tmp_path, base_url="http://127.0.0.1:9/", timeout=2, show_progress=False)
    assert err.value.retryable
