"""SIGTERM on a real `openfirst serve`: a request that finishes within the grace period is answered and logged;
one still running past it is cut off, and its decision is logged all the same."""

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from openfirst.compiler.backends.fake_server import Reply, ScriptedServer, completion
from openfirst.compiler.backends.llamacpp_server import free_port
from tests.helpers import GOOD_TICKET, TASK

pytestmark = pytest.mark.slow  # a real server process


@pytest.mark.parametrize("grace_s, delay_s, expect_ok", [(5.0, 1.0, True), (0.5, 6.0, False)])
def test_sigterm_finishes_or_logs_requests_in_flight(tmp_path, grace_s, delay_s, expect_ok):
    with ScriptedServer([Reply(body=completion(GOOD_TICKET), delay_s=delay_s)]) as local:
        port = free_port()
        log = tmp_path / "decisions.jsonl"
        config = tmp_path / "c.toml"
        config.write_text(f'[tasks]\nsupport_ticket = "{TASK}"\n[local]\nkind = "server"\nmodel = "m"\n'
                          f'base_url = "{local.base_url}"\nflavor = "json_schema"\n'
                          f'retry = {{ max_attempts = 1, deadline_s = 30, attempt_timeout_s = 30 }}\n'
                          f'[program]\nmax_retries = 0\n[log]\ndecisions = "{log}"\n'
                          f'[serve]\nport = {port}\nshutdown_grace_s = {grace_s}\n')
        proc = subprocess.Popen([sys.executable, "-m", "openfirst.cli", "serve", "--config", str(config)],
                                stderr=open(tmp_path / "serve.log", "w"))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        answers = []
        worker = threading.Thread(target=lambda: answers.append(_post(url)))
        worker.start()
        time.sleep(0.5)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        worker.join(timeout=30)
    logged = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(logged) == 1 and logged[0]["endpoint"] == "extract"
    assert logged[0]["ok"] is expect_ok
    if expect_ok:
        assert answers and answers[0] == 200
    else:  # cut off at the end of the grace period: told so, and logged
        assert answers == [503] and logged[0]["error"] == "cancelled"


def _post(url: str) -> int | str:
    try:
        return httpx.post(f"{url}/v1/tasks/support_ticket/extract", json={"input": "refund me"}, timeout=30).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__
