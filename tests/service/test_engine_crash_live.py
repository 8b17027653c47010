"""A real `openfirst serve` whose in-process llama.cpp engine (isolated, the default) is killed with SIGSEGV while
it runs a request: that request gets a typed, retryable 503 (EngineCrashed), /healthz says degraded while the
engine restarts, the next request is served, the server process never exits, and no response is a 500."""

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from openfirst.compiler.backends.llamacpp_server import free_port
from tests.helpers import TASK

pytestmark = pytest.mark.slow  # a real server process and the real SmolLM2


def test_a_sigsegv_in_the_engine_costs_one_request_and_never_the_server(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by .ci/setup")
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[tasks]\nsupport_ticket = "{TASK}"\n[local]\nkind = "llamacpp"\nn_threads = 2\n'
                      f'[program]\nmax_retries = 1\nmax_tokens = 256\n[log]\ndecisions = "{tmp_path / "d.jsonl"}"\n'
                      f'[serve]\nport = {port}\n')
    proc = subprocess.Popen([sys.executable, "-m", "openfirst.cli", "serve", "--config", str(config)],
                            stderr=open(tmp_path / "serve.log", "w"))
    url = f"http://127.0.0.1:{port}"
    statuses: list[int] = []
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            health = _wait_healthy(client, proc)
            engine_pid = health["engine"]["pid"]
            assert health["engine"]["state"] == "ok" and engine_pid != proc.pid
            text = "My parcel has not arrived after three weeks and nobody answers my emails. " * 30
            answers: list[httpx.Response] = []
            worker = threading.Thread(target=lambda: answers.append(
                client.post("/v1/tasks/support_ticket/extract", json={"input": text})))
            worker.start()
            deadline = time.monotonic() + 60
            while not client.get("/healthz").json()["engine"]["busy"]:  # the request is in the engine now
                assert time.monotonic() < deadline, "the request never reached the engine"
                time.sleep(0.01)
            os.kill(engine_pid, signal.SIGSEGV)
            worker.join(120)
            crashed = answers[0]
            statuses.append(crashed.status_code)
            assert crashed.status_code == 503, crashed.text
            error = crashed.json()["error"]
            assert error["type"] == "EngineCrashed" and error["retryable"] and "SIGSEGV" in error["message"]
            seen = [client.get("/healthz").json()]
            assert seen[0]["status"] == "degraded" and seen[0]["engine"]["state"] == "restarting"
            nxt = client.post("/v1/tasks/support_ticket/extract",
                              json={"input": "The app crashes every time I open the settings page on my phone."})
            statuses.append(nxt.status_code)
            assert nxt.status_code == 200, nxt.text
            assert nxt.json()["output"]["category"] in {"billing", "technical", "account", "shipping", "other"}
            health = client.get("/healthz").json()
            assert health["status"] == "ok" and health["engine"]["crashes"] == 1
            assert health["engine"]["restarts"] == 1 and health["engine"]["pid"] != engine_pid
            assert "SIGSEGV" in health["engine"]["last_crash"]
            assert proc.poll() is None  # the server never exited
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert 500 not in statuses


def _wait_healthy(client: httpx.Client, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "openfirst serve exited while starting"
        try:
            r = client.get("/healthz", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("openfirst serve did not start")
