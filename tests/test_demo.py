"""`make demo` keeps working: the narrated end-to-end run exits 0 and leaves nothing behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_to_the_end_and_stops_everything():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,  # not a terminal: the demo must not wait for Enter
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for expected in (
        "Cycle 1: initial load",
        "Cycle 2: delta sync",
        "webhook answered 200",
        "Cycle 3: nobody edited anything",
        "nothing to do",
        "/api/dashboard?code=",
        "no process left running",
    ):
        assert expected in out, out
    # Every port the demo printed is closed again.
    for port in re.findall(r"http[s]?://127\.0\.0\.1:(\d+)", out):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(port))) != 0, f"port {port} still open"
