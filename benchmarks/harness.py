"""Processes of a benchmark run and one measured cycle.

A `World` is Azurite (shared by the run), the emulator process (benchmarks.world) and a
fresh state-table prefix; `World.cycle()` runs the sync's real cycle in its own process
(benchmarks.syncrun: run_cycle over real HTTP, Table Storage in Azurite, as the timer
function does) and returns a `Measured` that joins what the three processes saw: the
API calls each emulator counted, per endpoint; the sync's CPU and memory; and the waits
of both processes, so the wall time can be converted to real time (benchmarks.waits).
Every child runs in its own process group and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import waits
from emulators.actors import People
from emulators.azurite import ROOT, stop_process
from emulators.stack import sync_env

#: The run's scratch directory (TLS files, logs, per-cycle output), ignored by git.
RUN_DIR = ROOT / ".run" / "bench"
#: Real seconds between two cycles: the default schedule, every 5 minutes.
CYCLE_INTERVAL_S = 300.0
#: The sync's feed overlap (its default, 120 s: past production's 60 s late commits).
#: The gap between two cycles is at least this, so the next read never re-reads the
#: last one's own writes merely because compressed time shortened the gap.
FEED_OVERLAP_S = 120.0
#: Background activity of a mid-size instance (the production profile's figure).
NOISE_PER_HOUR = 20_000.0


@dataclass
class Measured:
    """One cycle as the three processes saw it. Durations are measured (compressed)."""

    summary: dict[str, Any]
    wall_s: float  # measured wall time of run_cycle
    waited_s: float  # of which: time at least one process was waiting (scaled)
    time_scale: float
    cpu_s: float  # the sync process alone
    peak_rss_mb: float
    baseline_rss_mb: float
    marketo: dict[str, int]  # calls per endpoint, as the emulator counted them
    dynamics: dict[str, int]
    marketo_server_s: float  # Marketo server time spent (sum over calls, real seconds)
    dynamics_server_s: float  # Dataverse latency + execution (sum over calls, real s)
    dynamics_execution_s: float  # execution time counted against 1,200 s / 5 min (real)
    throttled: dict[str, int] = field(default_factory=dict)
    emulator_cpu_s: float = 0.0
    azurite_cpu_s: float = 0.0

    @property
    def real_wall_s(self) -> float:
        """Real-time equivalent: the waiting part scaled back, the local part as is."""
        return (self.wall_s - self.waited_s) + self.waited_s / self.time_scale

    @property
    def local_s(self) -> float:
        return self.wall_s - self.waited_s


class World(People):
    """The emulators of one scenario group, the sync's settings, and the people."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        ready: dict[str, str],
        storage: str,
        scale: float,
        name: str,
    ) -> None:
        super().__init__(ready["marketo"], ready["dynamics"], ready["ca_bundle"], ready["tenant"])
        self.proc = proc
        self.control_url = ready["control"]
        self.storage = storage
        self.scale = scale
        self.name = name
        self.prefix = "b" + uuid.uuid4().hex[:12]
        self.cycles = 0
        self.last_real_s = 0.0
        self.last_noise = 0
        self.azurite_pid = azurite_pid(storage)

    # ---- set-up through the control API --------------------------------------
    def control(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.control_url}{path}", timeout=None, **kw)
        r.raise_for_status()
        return r.json()

    def env(self) -> dict[str, str]:
        s = self.scale
        return {
            **sync_env(self.storage, self.marketo_url, self.dynamics_url, self.ca_bundle),
            "DYNAMICS_TENANT_ID": self.tenant,
            "SYNC_TABLE_PREFIX": self.prefix,
            "SYNC_TIME_SCALE": str(s),
            # The default overlap (120 s) covers production's 60 s late commits.
            "SYNC_MARKETO_FEED_OVERLAP_SECONDS": str(FEED_OVERLAP_S * s),
            # A mass update is what is measured; the guard would hold it for a person.
            "SYNC_MASS_CHANGE_LIMIT": "0",
            # One cycle does the whole job: a load longer than the budget would continue
            # in the next timer run in Azure (see README, "Performance").
            "SYNC_CYCLE_BUDGET_SECONDS": "1000000",
        }

    def _sync_process(self, *args: str) -> dict[str, Any]:
        out = RUN_DIR / f"{self.name}-{self.cycles}.json"
        trace = os.environ.get("BENCH_TRACE_MEMORY_DIR")
        if trace and "--setup" not in args:
            args = (*args, "--trace-memory", str(Path(trace) / f"{self.name}-{self.cycles}.txt"))
        self.cycles += 1
        with open(RUN_DIR / "sync.log", "ab") as log:
            code = subprocess.call(
                [sys.executable, "-m", "benchmarks.syncrun", "--out", str(out), *args],
                cwd=ROOT,
                env={**os.environ, **self.env()},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if code != 0:
            raise RuntimeError(f"sync process failed ({code}); see {RUN_DIR / 'sync.log'}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def setup(self) -> None:
        """What an admin runs once before the first cycle (tables, activity types)."""
        self._sync_process("--setup")

    def noise(self, per_hour: float) -> int:
        """Set Marketo's background activity rate; returns how much it made so far."""
        return int(self.control("POST", "/noise", json={"per_hour": per_hour})["made"])

    def wait_interval(self, noise: bool = True) -> None:
        """Let the time between two cycles pass: at least the 5-minute schedule, or the
        last cycle's own real duration (the timer skips runs while it holds the lease).

        Compressed, the interval is shortened: first Marketo's background activity of
        the coming feed window is made in one burst (what production's window holds:
        the interval since the last read began plus the overlap the read goes back),
        then the harness waits out the feed overlap (longer than the late-commit delay),
        so every edit is visible and the next read does not reach back into the burst
        before last, nor into the last cycle's own writes. Background activity is off
        during cycles, whose unscaled local time would otherwise stand for a many times
        longer stretch of the instance's day."""
        interval = max(CYCLE_INTERVAL_S, self.last_real_s)
        self.last_noise = 0
        if noise:
            burst = 1.0  # seconds of wall time
            window = interval + FEED_OVERLAP_S
            made = self.noise(NOISE_PER_HOUR * window / (burst / self.scale))
            self._touch()  # the emulator makes background activity as calls arrive
            time.sleep(burst)
            self._touch()
            self.last_noise = self.noise(0) - made
        time.sleep(FEED_OVERLAP_S * 1.05 * self.scale)

    def _touch(self) -> None:
        self.marketo("GET", "/rest/v1/lead/1.json")

    def stats(self) -> tuple[dict[str, Any], dict[str, Any]]:
        m = self.marketo_admin("GET", "stats")
        d = self.dynamics_admin("GET", "stats")
        return m, d

    def reset_stats(self) -> None:
        self.marketo_admin("POST", "stats/reset")
        self.dynamics_admin("POST", "stats")
        self.control("DELETE", "/waits")

    def cycle(self, *sync_args: str) -> Measured:
        self.reset_stats()
        before = self.control("GET", "/sample")
        table0 = cpu_seconds(self.azurite_pid) if self.azurite_pid else 0.0
        run = self._sync_process(*sync_args)
        table1 = cpu_seconds(self.azurite_pid) if self.azurite_pid else 0.0
        after = self.control("GET", "/sample")
        t0, t1 = run["t0"], run["t1"]
        emu = self.control("GET", f"/waits?since={t0}&until={t1}")
        mstats, dstats = self.stats()
        marketo = {k: int(v["calls"]) for k, v in mstats["endpoints"].items() if v["calls"]}
        dynamics = {
            k: int(v["calls"])
            for k, v in dstats.items()
            if v["calls"] and "token" not in k and "openid" not in k
        }
        throttled = {
            "marketo": int(mstats["totals"]["throttled"]),
            "dynamics": sum(int(v["throttled"]) for v in dstats.values()),
        }
        measured = Measured(
            summary=run["summary"],
            wall_s=t1 - t0,
            waited_s=waits.covered([*run["segments"], *emu["segments"]], t0, t1),
            time_scale=self.scale,
            cpu_s=run["cpu_s"],
            peak_rss_mb=run["peak_rss_mb"],
            baseline_rss_mb=run["baseline_rss_mb"],
            marketo=marketo,
            dynamics=dynamics,
            marketo_server_s=emu["totals"]["emulators.marketo"] / self.scale,
            dynamics_server_s=emu["totals"]["emulators.dynamics"] / self.scale,
            dynamics_execution_s=sum(float(v.get("service_ms", 0)) for v in dstats.values()) / 1000,
            throttled=throttled,
            emulator_cpu_s=after["cpu_s"] - before["cpu_s"],
            azurite_cpu_s=table1 - table0,
        )
        self.last_real_s = measured.real_wall_s
        return measured

    # ---- people's changes, through the public APIs ----------------------------
    def dynamics_update(self, entity: str, changes: list[dict[str, Any]]) -> None:
        """A salesperson's mass update (UpdateMultiple, 1,000 rows a request)."""
        sets = {"contact": "contacts", "lead": "leads"}
        for i in range(0, len(changes), 1000):
            targets = [
                {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}", **c}
                for c in changes[i : i + 1000]
            ]
            r = self.dynamics(
                "POST",
                f"{sets[entity]}/Microsoft.Dynamics.CRM.UpdateMultiple",
                json={"Targets": targets},
                timeout=None,
            )
            assert r.status_code < 300, r.text

    def marketo_update(self, changes: list[dict[str, Any]]) -> None:
        """A marketer's list import: Sync Leads updateOnly, 300 people a call."""
        for i in range(0, len(changes), 300):
            body = self.marketo(
                "POST",
                "/rest/v1/leads.json",
                timeout=None,
                json={"action": "updateOnly", "lookupField": "id", "input": changes[i : i + 300]},
            )
            bad = [r for r in body["result"] if r.get("status") != "updated"]
            assert not bad, bad[:3]


@contextmanager
def open_world(storage: str, scale: float, name: str, seed: int = 1) -> Iterator[World]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    log = open(RUN_DIR / f"world-{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.world",
            "--time-scale",
            str(scale),
            "--seed",
            str(seed),
            "--run-dir",
            str(RUN_DIR),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready: dict[str, str] | None = None
        deadline = time.monotonic() + 60
        while ready is None:
            line = proc.stdout.readline().decode()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"emulator process exited; see {log.name}")
            if line.startswith("{"):
                ready = json.loads(line)
            if time.monotonic() > deadline:
                raise RuntimeError("emulator process did not start within 60 s")
        yield World(proc, ready, storage, scale, name)
    finally:
        stop_process(proc)
        log.close()


def running_storage() -> Any:
    """Azurite for the whole run (or AZURITE_CONNECTION, as the tests allow)."""
    from emulators.azurite import running_azurite

    existing = os.environ.get("AZURITE_CONNECTION")
    if existing:
        return _given(existing)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    return running_azurite(log_path=RUN_DIR / "azurite.log")


@contextmanager
def _given(conn: str) -> Iterator[str]:
    yield conn


def cpu_seconds(pid: int) -> float:
    """CPU time a process (of this machine) has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def azurite_pid(storage: str) -> int | None:
    """The Azurite process serving this connection string (its CPU is the local Table
    Storage's), found by the port on its command line."""
    port = storage.split("TableEndpoint=http://127.0.0.1:", 1)[-1].split("/", 1)[0]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"azurite-table" in a for a in args) and port.encode() in args:
            return int(entry.name)
    return None


def rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
