"""Long CLI runs draw a progress line on a terminal (stderr, `\\r`) and print nothing
extra when stderr is piped."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys

from sync_core.progress import Progress
from tests.scenarios.test_cli import run
from tests.scenarios.world import World


def run_on_a_terminal(env: dict[str, str], *args: str) -> tuple[str, str]:
    """stderr is a pseudo-terminal (as an admin's shell); stdout stays a pipe."""
    master, slave = pty.openpty()
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MARKETO_", "DYNAMICS_", "SYNC_"))
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync_core", *args],
        env={**clean, **env}, stdout=subprocess.PIPE, stderr=slave, text=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    return out, b"".join(chunks).decode(errors="replace")


def test_run_once_and_plan_show_progress_only_on_a_terminal(world: World):
    world.setup()
    for n in range(12):
        world.dyn_create("contact", lastname=f"P{n}", emailaddress1=f"p{n}@example.com")
    world.extra_env["SYNC_DYNAMICS_PAGE_SIZE"] = "3"
    out, err = run_on_a_terminal(world.env(), "plan", "--json")
    # Redrawn as the cycle goes: counts that grew past zero before it ended.
    assert "\r" in err and re.search(r"created [1-9]", err)
    assert json.loads(out)["counts"]["created_in_marketo"] == 12  # stdout stays clean JSON
    out, err = run_on_a_terminal(world.env(), "run-once")
    assert "\r" in err and "to Marketo" in err
    assert "succeeded" in out and "\r" not in out
    piped = run(world.env(), "run-once", "--json")
    assert piped.returncode == 0 and "\r" not in piped.stderr
    assert json.loads(piped.stdout)["outcome"] == "succeeded"


def test_progress_line_redraws_and_clears():
    stream = io.StringIO()
    p = Progress(stream, enabled=True)
    p.update("one", force=True)
    p.update("two", force=True)
    p.done()
    text = stream.getvalue()
    assert text.count("\r") == 3 and "one\033[K" in text and text.endswith("\r\033[K")
    quiet = io.StringIO()
    q = Progress.for_stream(quiet)  # a StringIO is not a terminal
    q.update("x", force=True)
    q.done()
    assert quiet.getvalue() == ""
