"""A native crash in one test fails that test alone: the suite goes on and pytest prints its summary (the project's
pytest settings run the tests in an xdist worker process that is replaced when it dies)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASHING = '''
import os
import signal


def test_before():
    assert True


def test_a_native_engine_crashes():
    os.kill(os.getpid(), signal.SIGSEGV)  # what llama.cpp's AMX kernel did


def test_after():
    assert True
'''


def test_a_segfaulting_test_fails_alone_and_the_summary_is_printed(tmp_path):
    (tmp_path / "test_native.py").write_text(CRASHING)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                           str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(tmp_path / "test_native.py")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "crashed while running" in out and "test_a_native_engine_crashes" in out
    assert "Segmentation fault" in out  # the signal, from the worker's fault handler
