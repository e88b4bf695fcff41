"""Start and stop Azurite (the official Azure Storage emulator, from npm) by PID.

Used by the test session and `make demo`. It runs in memory on loopback only, with the
flags that keep it quiet offline; the process is killed by its own PID (not a shell's)
so a failed test run or Ctrl-C never leaves a node process behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_azurite(port: int | None = None, log_path: Path | None = None) -> Iterator[str]:
    """Run Azurite's table service; yield its connection string; always stop it."""
    binary = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `npm ci` (make does this for you)")
    port = port or _free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(binary),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        # Own process group: the whole tree goes with one killpg.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise RuntimeError("Azurite did not listen within 20 s")
            time.sleep(0.05)
        yield connection_string(port)
    finally:
        stop_process(proc)
        if log_path:
            log.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child started with start_new_session: TERM its group, then KILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
