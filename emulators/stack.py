"""Start the whole local stack as child processes and stop it by PID, always.

Azurite (table service) plus `python -m emulators all` (Marketo, Dynamics over TLS,
and the functions host configured against them). Used by `make demo`; every process
runs in its own session and is killed with its group on exit, Ctrl-C included, so
nothing is left listening afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from emulators.azurite import ROOT, running_azurite, stop_process
from emulators.functions import LOCAL_FUNCTION_KEY, LOCAL_MASTER_KEY

RUN_DIR = ROOT / ".run"
DYNAMICS_TENANT = "00000000-0000-4000-8000-0000000000e1"
WEBHOOK_SECRET = "local-webhook-secret"


@dataclass
class Stack:
    storage: str
    marketo_url: str
    dynamics_url: str
    functions_url: str
    ca_bundle: str
    env: dict[str, str]
    function_key: str = LOCAL_FUNCTION_KEY
    master_key: str = LOCAL_MASTER_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {RUN_DIR}/*.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within 30 s")
        time.sleep(0.05)


def sync_env(storage: str, marketo: str, dynamics: str, ca_bundle: str) -> dict[str, str]:
    """The app settings a local run uses (the same names as in Azure)."""
    return {
        "MARKETO_BASE_URL": marketo,
        "MARKETO_CLIENT_ID": "sync-app",
        "MARKETO_CLIENT_SECRET": "sync-app-secret",
        "DYNAMICS_URL": dynamics,
        "DYNAMICS_AUTHORITY_HOST": dynamics,
        "DYNAMICS_TENANT_ID": DYNAMICS_TENANT,
        "DYNAMICS_CLIENT_ID": "sync-app",
        "DYNAMICS_CLIENT_SECRET": "sync-app-secret",
        "SYNC_STORAGE_CONNECTION": storage,
        "SYNC_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SYNC_SCHEDULE": "0 */5 * * * *",  # the timer binding reads %SYNC_SCHEDULE%
        # The emulator's self-made CA: trusted through the standard variables that
        # requests (azure-identity) and httpx read, so no code knows about emulators.
        "REQUESTS_CA_BUNDLE": ca_bundle,
        "SSL_CERT_FILE": ca_bundle,
    }


@contextmanager
def running_stack() -> Iterator[Stack]:
    RUN_DIR.mkdir(exist_ok=True)
    with ExitStack() as stack:
        storage = stack.enter_context(running_azurite(log_path=RUN_DIR / "azurite.log"))
        mport, dport, fport = _free_port(), _free_port(), _free_port()
        marketo, dynamics = f"http://127.0.0.1:{mport}", f"https://127.0.0.1:{dport}"
        ca_bundle = str(RUN_DIR / "dynamics-ca.pem")
        env = sync_env(storage, marketo, dynamics, ca_bundle)
        log = open(RUN_DIR / "emulators.log", "ab")  # noqa: SIM115
        stack.callback(log.close)
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "emulators", "all",
                "--marketo-port", str(mport),
                "--dynamics-port", str(dport), "--dynamics-tls",
                "--functions-port", str(fport), "--functions-no-timers",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        stack.callback(stop_process, proc)
        for port, what in ((mport, "Marketo"), (dport, "Dynamics"), (fport, "functions host")):
            _wait_port(port, proc, what)
        yield Stack(storage, marketo, dynamics, f"http://127.0.0.1:{fport}", ca_bundle, env)
