"""A real headless browser (Debian's Chromium) for page tests: the rendered DOM and a
screenshot, with networking beyond the page itself switched off.

Chromium runs in its own session with a throw-away profile and is killed with its whole
process group when it finishes or times out, so no renderer is ever left behind.
`make setup` installs it (apt); a machine without it fails the test with that hint.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from emulators.azurite import stop_process

FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
)


def chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        raise RuntimeError(
            "Chromium is not installed: `make setup` installs it (apt-get install chromium)"
        )
    return found


def _run(args: list[str], timeout: float = 60) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            stop_process(proc)  # type: ignore[arg-type]
            try:
                # The browser's helpers (zygote, GPU, renderers) share its group and may
                # outlive it for a moment: end them too.
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}")
    return out.decode()


def dump_dom(url: str) -> str:
    """The DOM after the page loaded, serialized."""
    return _run(["--dump-dom", url])


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 1900)) -> Path:
    _run([f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url])
    if not path.exists() or path.stat().st_size < 10_000:
        raise RuntimeError(f"chromium wrote no screenshot at {path}")
    return path
