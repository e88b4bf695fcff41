"""The benchmark scenarios (issue: first load, steady state, idle, webhook, reconcile).

Each scenario sets up a world through the emulators' control API and the people's
public APIs, runs the sync's real cycle and turns what was measured into one result
object: the fields the issue lists, the work's minimum calls (benchmarks.limits) and,
for the lead who reads it, the calls per endpoint and the parts of the wall time.
Scenarios that need the same database run in one world, in order; the people changed
are chosen by a seeded shuffle so each step touches contacts and leads alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks import limits
from benchmarks.harness import RUN_DIR, Measured, World, cpu_seconds, open_world, rss_of
from benchmarks.limits import Work, min_calls
from emulators.azurite import ROOT, stop_process
from emulators.functions import LOCAL_FUNCTION_KEY

WEBHOOK_TEMPLATE = '{"leadId": {{lead.Id}}, "syncAs": "lead"}'


@dataclass(frozen=True)
class Sizes:
    population: int  # people in each first-load world (half contacts, half leads)
    changes: tuple[int, ...]  # people changed per steady-state step
    # Webhook runs: (deliveries in flight, deliveries). One in flight stays under the
    # webhook's Marketo share (3 calls a delivery); 5 and 20 saturate it.
    deliveries: tuple[tuple[int, int], ...]
    webhook_population: int  # Dynamics records of the cycle running meanwhile
    reconcile: int  # people of the reconcile on state built in place (0: none)


DEFAULT = Sizes(
    population=5_000,
    changes=(500, 5_000),
    deliveries=((1, 20), (5, 50), (20, 100)),
    webhook_population=1_000,
    reconcile=0,
)
FULL = Sizes(
    population=100_000,
    changes=(10_000, 100_000),
    deliveries=((1, 50), (5, 200), (20, 400)),
    webhook_population=2_000,
    reconcile=1_000_000,
)

Report = Callable[[dict[str, Any]], None]


def result(
    name: str,
    people: int,
    m: Measured,
    works: list[Work],
    *,
    wall_s: float | None = None,
    cpu_s: float | None = None,
    peak_rss_mb: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The issue's result object, plus what explains it. `wall_s`, `cpu_s` and
    `peak_rss_mb` replace the cycle's own figures where the scenario measures another
    process (the webhook's)."""
    calls = {"marketo": sum(m.marketo.values()), "dynamics": sum(m.dynamics.values())}
    minimum = {"marketo": 0, "dynamics": 0}
    for w in works:
        for system, n in min_calls(w).items():
            minimum[system] += n
    ratio = {s: round(calls[s] / minimum[s], 2) if minimum[s] else None for s in calls}
    b = limits.bounds(
        calls["marketo"],
        calls["dynamics"],
        m.marketo_server_s,
        m.dynamics_server_s,
        m.dynamics_execution_s,
    )
    binding = max(b, key=lambda k: b[k])
    wall = m.real_wall_s if wall_s is None else wall_s
    cpu = m.cpu_s if cpu_s is None else cpu_s
    rss = m.peak_rss_mb if peak_rss_mb is None else peak_rss_mb
    counts = {k: v for k, v in m.summary.get("counts", {}).items() if v}
    return {
        "scenario": name,
        "people": people,
        "wall_s": round(wall, 1),
        "people_per_hour": round(people / wall * 3600) if people and wall else None,
        "calls": calls,
        "min_calls": minimum,
        "calls_ratio": ratio,
        "bound_s": round(b[binding], 1),
        "bound_ratio": round(wall / b[binding], 2) if b[binding] else None,
        "binding_limit": binding,
        "peak_rss_mb": round(rss),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_people": round(cpu / people * 1000, 2) if people else None,
        "outcome": m.summary.get("outcome"),
        "counts": counts,
        "measured": {
            "time_scale": m.time_scale,
            "wall_s": round(m.wall_s, 2),
            "waited_s": round(m.waited_s, 2),
            "local_s": round(m.local_s, 2),
            "emulator_cpu_s": round(m.emulator_cpu_s, 2),
            "azurite_cpu_s": round(m.azurite_cpu_s, 2),
            "baseline_rss_mb": round(m.baseline_rss_mb),
            "marketo_server_s": round(m.marketo_server_s, 1),
            "dynamics_server_s": round(m.dynamics_server_s, 1),
            "dynamics_execution_s": round(m.dynamics_execution_s, 1),
        },
        "bounds": {k: round(v, 1) for k, v in b.items()},
        "calls_by_endpoint": {
            "marketo": dict(sorted(m.marketo.items())),
            "dynamics": dict(sorted(m.dynamics.items())),
        },
        "throttled": m.throttled,
        **extra,
    }


def _split(pairs: list[list[Any]]) -> tuple[int, int]:
    contacts = sum(1 for p in pairs if p[1] == "contact")
    return contacts, len(pairs) - contacts


# ---- 1. first load into an empty Marketo ----------------------------------------
def first_load_empty(
    storage: str, sizes: Sizes, scale: float, report: Report, *, idle: bool = True
) -> None:
    label = "in real time: " if scale == 1 else ""
    _empty(storage, sizes.population, scale, report, label, idle=idle)


def calibration(storage: str, scale: float, report: Report, n: int = 1_000) -> None:
    """The same small first load in real time and compressed: how far the conversion of
    compressed wall time (and the calls the sync's own pacing chooses) can be trusted."""
    for s in (1.0, scale):
        _empty(storage, n, s, report, f"check at scale {s:g}: ", idle=False)


def _empty(storage: str, n: int, scale: float, report: Report, label: str, *, idle: bool) -> None:
    c, le = n // 2, n - n // 2
    with open_world(storage, scale, "empty") as w:
        w.control("POST", "/prepare", json={"dynamics": {"contacts": c, "leads": le}})
        w.setup()
        m = w.cycle()
        report(
            result(
                f"{label}first load, {n:,} Dynamics records into an empty Marketo",
                n,
                m,
                [
                    Work(
                        contacts_read=c,
                        leads_read=le,
                        first_run=True,
                        marketo_writes=n,
                        dynamics_writes=n,
                    )
                ],
            )
        )
        if not idle:
            return
        w.wait_interval()
        m = w.cycle()
        # Our creates come back as New Lead activities; our id writes as a delta.
        report(
            result(
                f"  {label}the next cycle (idle)",
                0,
                m,
                [Work(contacts_read=c, leads_read=le, feed_activities=n)],
            )
        )


# ---- 1b, 2, 3, 5: the world where both sides hold the same people ---------------
class Changes:
    """People's edits between cycles, through the public APIs, and the work they make."""

    def __init__(self, w: World, pairs: list[list[Any]], seed: int = 7) -> None:
        self.w = w
        self.pairs = list(pairs)
        random.Random(seed).shuffle(self.pairs)
        self.round = 0
        self.offset = 0

    def pick(self, k: int) -> list[list[Any]]:
        out = [self.pairs[(self.offset + i) % len(self.pairs)] for i in range(k)]
        self.offset = (self.offset + k) % len(self.pairs)
        self.round += 1
        return out

    def in_dynamics(self, chosen: list[list[Any]], column: str, tag: str) -> None:
        keys = {"contact": "contactid", "lead": "leadid"}
        for entity in ("contact", "lead"):
            rows = [
                {keys[entity]: did, column: f"{tag} {self.round}-{i}"}
                for i, (_, e, did) in enumerate(chosen)
                if e == entity
            ]
            self.w.dynamics_update(entity, rows)

    def in_marketo(self, chosen: list[list[Any]], field: str, tag: str) -> None:
        self.w.marketo_update(
            [{"id": mid, field: f"{tag} {self.round}-{i}"} for i, (mid, _, _) in enumerate(chosen)]
        )


def linked_world(storage: str, sizes: Sizes, scale: float, report: Report) -> None:
    n = sizes.population
    c, le = n // 2, n - n // 2
    with open_world(storage, scale, "linked") as w:
        prep = w.control(
            "POST",
            "/prepare",
            json={"dynamics": {"contacts": c, "leads": le}, "copy_to_marketo": 0.1},
        )
        pairs = prep["pairs"]
        differing = prep["differing"]
        w.setup()
        m = w.cycle()
        report(
            result(
                f"first load, {n:,} people on both sides, linked by email",
                n,
                m,
                [
                    Work(
                        contacts_read=c,
                        leads_read=le,
                        first_run=True,
                        marketo_lookups=n,
                        marketo_writes=n,
                        dynamics_writes=n,
                    )
                ],
            )
        )
        w.wait_interval()
        m = w.cycle()
        # Contacts: Dynamics wins a differing title (written to Marketo: feed activity).
        report(
            result(
                "  the next cycle (idle)",
                0,
                m,
                [Work(contacts_read=c, leads_read=le, feed_activities=differing["contact"])],
            )
        )

        changes = Changes(w, pairs)
        for k in sizes.changes:
            steady_state(w, changes, k, report)

        # Quiet for two intervals: a read may start at the previous read's mark.
        w.wait_interval(noise=False)
        w.cycle()
        w.wait_interval(noise=False)
        m = w.cycle()
        report(result("idle cycle, quiet instance (no background activity)", 0, m, [Work()]))
        w.wait_interval()
        m = w.cycle()
        report(
            result(
                "idle cycle, 5 minutes of background activity",
                0,
                m,
                [Work()],
                background_activities=w.last_noise,
            )
        )

        w.dynamics_admin("POST", "events", json={"event": "expire-change-tokens"})
        w.wait_interval()
        m = w.cycle()
        report(
            result(
                f"reconcile, {n:,} people (change tokens expired)",
                n,
                m,
                [Work(contacts_read=c, leads_read=le, expired=True)],
            )
        )


def steady_state(w: World, changes: Changes, k: int, report: Report) -> None:
    collide_every = 20  # 5 % of the people changed on both sides change the same field

    chosen = changes.pick(k)
    kc, kl = _split(chosen)
    changes.in_dynamics(chosen, "jobtitle", "Sales title")
    w.wait_interval()
    m = w.cycle()
    report(
        result(
            f"steady state, {k:,} changed in Dynamics",
            k,
            m,
            [Work(contacts_read=kc, leads_read=kl, marketo_writes=k)],
        )
    )
    w.wait_interval()
    m = w.cycle()
    report(result("  the next cycle (idle)", 0, m, [Work(feed_activities=k)]))

    chosen = changes.pick(k)
    kc, kl = _split(chosen)
    changes.in_marketo(chosen, "phone", "+1 555")
    w.wait_interval()
    m = w.cycle()
    report(
        result(
            f"steady state, {k:,} changed in Marketo",
            k,
            m,
            [Work(feed_activities=k, dynamics_writes=k)],
        )
    )
    w.wait_interval()
    m = w.cycle()
    report(result("  the next cycle (idle)", 0, m, [Work(contacts_read=kc, leads_read=kl)]))

    chosen = changes.pick(k)
    kc, kl = _split(chosen)
    both = chosen[::collide_every]
    changes.in_dynamics(chosen, "jobtitle", "Sales title")
    changes.in_marketo(chosen, "city", "City")
    changes.in_marketo(both, "title", "Marketing title")
    # The winner of a same-field collision is the system of record: Marketo for leads
    # (its title stays, nothing to write back to Marketo), Dynamics for contacts.
    lead_wins = sum(1 for p in both if p[1] == "lead")
    report_name = f"steady state, {k:,} changed on both sides ({len(both):,} collisions)"
    w.wait_interval()
    m = w.cycle()
    report(
        result(
            report_name,
            k,
            m,
            [
                Work(
                    contacts_read=kc,
                    leads_read=kl,
                    feed_activities=k + len(both),
                    marketo_writes=k - lead_wins,
                    dynamics_writes=k,
                )
            ],
        )
    )
    w.wait_interval()
    m = w.cycle()
    report(
        result(
            "  the next cycle (idle)",
            0,
            m,
            [Work(contacts_read=kc, leads_read=kl, feed_activities=k - lead_wins)],
        )
    )


# ---- 4. webhook latency while a cycle runs ---------------------------------------
@contextlib.contextmanager
def functions_host(w: World) -> Iterator[tuple[str, int]]:
    log = open(RUN_DIR / "host.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.host"],
        cwd=ROOT,
        env={**os.environ, **w.env()},
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline().decode()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"functions host exited; see {log.name}")
            if line.startswith("{"):
                yield json.loads(line)["url"], proc.pid
                break
    finally:
        stop_process(proc)
        log.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q) - 1]


def webhooks(storage: str, sizes: Sizes, report: Report) -> None:
    """Real time (scale 1): a latency is not converted, it is measured."""
    n = sizes.webhook_population
    c, le = n // 2, n - n // 2
    total = sum(count for _, count in sizes.deliveries)
    with open_world(storage, 1.0, "webhook") as w:
        prep = w.control(
            "POST",
            "/prepare",
            json={"dynamics": {"contacts": c, "leads": le}, "marketo_only": total},
        )
        waiting = list(prep["marketo_ids"])
        w.setup()
        with functions_host(w) as (host_url, host_pid):
            hook = w.marketo_admin(
                "POST",
                "webhooks",
                json={
                    "name": "Sync Person to Microsoft",
                    "method": "POST",
                    "url": f"{host_url}/api/sync-person?code={LOCAL_FUNCTION_KEY}",
                    "template": WEBHOOK_TEMPLATE,
                    "requestTokenEncoding": "json",
                    "headers": {"x-sync-secret": w.env()["SYNC_WEBHOOK_SECRET"]},
                },
            )
            changes: Changes | None = None
            for in_flight, count in sizes.deliveries:
                ids, waiting = waiting[:count], waiting[count:]
                if changes is None:
                    during, works = (
                        f"a first load of {n:,}",
                        [
                            Work(
                                contacts_read=c,
                                leads_read=le,
                                first_run=True,
                                marketo_writes=n,
                                dynamics_writes=n,
                            )
                        ],
                    )
                else:
                    chosen = changes.pick(n)
                    changes.in_dynamics(chosen, "jobtitle", "Sales title")
                    during, works = (
                        f"a cycle writing {n:,} changes to Marketo",
                        [Work(contacts_read=c, leads_read=le, marketo_writes=n)],
                    )
                m, timing = deliveries_during_cycle(
                    w, int(hook["id"]), ids, in_flight, host_url, host_pid
                )
                # wall_s, calls and bounds are the cycle's window (the calls were counted
                # over it); people_per_hour the deliveries answered while they ran.
                row = result(
                    f"webhook, {in_flight} in flight, during {during}",
                    count,
                    m,
                    [*works, Work(deliveries=timing["delivered"])],
                    cpu_s=timing.pop("host_cpu_s"),
                    peak_rss_mb=timing.pop("host_peak_rss_mb"),
                    cycle={"cpu_s": round(m.cpu_s, 2), "peak_rss_mb": round(m.peak_rss_mb)},
                    **timing,
                )
                row["people_per_hour"] = round(
                    timing["delivered"] / timing["deliveries_span_s"] * 3600
                )
                report(row)
                if changes is None:
                    changes = Changes(w, _linked_pairs(w))


def _linked_pairs(w: World) -> list[list[Any]]:
    out: list[list[Any]] = []
    for entity, key, sets in (("contact", "contactid", "contacts"), ("lead", "leadid", "leads")):
        url = f"{sets}?$select={key},new_marketoid&$filter=new_marketoid ne null"
        while url:
            r = w.dynamics("GET", url, headers={"Prefer": "odata.maxpagesize=5000"})
            body = r.json()
            out += [[int(v["new_marketoid"]), entity, v[key]] for v in body["value"]]
            next_link = body.get("@odata.nextLink", "")
            url = next_link.split("/api/data/v9.2/", 1)[1] if next_link else ""
    return out


def deliveries_during_cycle(
    w: World, hook: int, ids: list[int], in_flight: int, host_url: str, host_pid: int
) -> tuple[Measured, dict[str, Any]]:
    done: list[Measured] = []
    cycle = threading.Thread(target=lambda: done.append(w.cycle()))
    cpu0 = cpu_seconds(host_pid)
    cycle.start()
    time.sleep(2.0)  # the cycle is past its start-up and reading
    took: dict[int, float] = {}  # deliveries the function answered 200
    failed: dict[str, int] = {}  # the others, by Marketo's error type and the reason given

    def deliver(lead: int) -> None:
        started = time.monotonic()
        r = httpx.post(
            f"{w.marketo_url}/_emulator/webhooks/{hook}/fire", json={"leadId": lead}, timeout=None
        )
        elapsed = time.monotonic() - started
        call = r.json()
        if call.get("errorType") or call.get("status") != 200:
            try:
                why = str(json.loads(call.get("response") or "{}").get("message", ""))
            except ValueError:
                why = ""
            key = f"{call.get('errorType')}: {why[:60]}".strip(": ")
            failed[key] = failed.get(key, 0) + 1
        else:
            took[lead] = elapsed

    first = time.monotonic()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(deliver, ids))
    span = time.monotonic() - first
    finished_in_cycle = cycle.is_alive()
    cycle.join()
    cpu = cpu_seconds(host_pid) - cpu0
    seen = httpx.get(f"{host_url}/_bench/deliveries").json()
    mine = {d["leadId"]: d for d in seen if d["leadId"] in took}
    ports = {httpx.URL(w.marketo_url).port, httpx.URL(w.dynamics_url).port}
    from benchmarks.waits import covered

    # Each delivery's time, split in the order a moment is claimed: an API call it
    # waited for (its own, or a shared Marketo call its request rode in), else a wait
    # for the rate window, else its request queued behind a shared call of its kind
    # already in flight, else Table Storage, else local (parsing, the event loop); "hop"
    # is the time outside the function (Marketo's emulator, HTTP, the functions host).
    kinds_all = ("api", "rate", "queued", "table", "local", "hop")
    parts: dict[str, list[float]] = {k: [] for k in kinds_all}
    overhead_ms: list[float] = []
    for lead, d in mine.items():
        t0, t1 = d["t0"], d["t1"]
        claimed = 0.0
        kinds = [
            ("api", lambda c: c[3] in ports),
            ("rate", lambda c: c[2] == "RATE"),
            ("queued", lambda c: c[2] == "QUEUED"),
            ("table", lambda c: c[2] == "TABLE"),
        ]
        chosen: list[list[Any]] = []
        for name, pick in kinds:
            chosen += [c for c in d["calls"] if pick(c)]
            upto = covered(chosen, t0, t1)
            parts[name].append((upto - claimed) * 1000)
            claimed = upto
        parts["local"].append((t1 - t0 - claimed) * 1000)
        parts["hop"].append((took[lead] - (t1 - t0)) * 1000)
        overhead_ms.append((took[lead] - covered(
            [c for c in d["calls"] if c[3] in ports], t0, t1)) * 1000)  # fmt: skip
    api_ms = parts["api"]
    ms = [t * 1000 for t in took.values()]
    inside = [(d["t1"] - d["t0"]) * 1000 for d in mine.values()]

    def pct(values: list[float], q: float) -> int | None:
        return round(_percentile(values, q)) if values else None

    timing = {
        "p50_ms": pct(ms, 50),
        "p95_ms": pct(ms, 95),
        "p99_ms": pct(ms, 99),
        # The function's own time, without the hop (what Azure's host and network
        # would stand for; here Marketo's emulator and the local functions host).
        "function_p50_ms": pct(inside, 50),
        "function_p95_ms": pct(inside, 95),
        "function_p99_ms": pct(inside, 99),
        "api_p95_ms": pct(api_ms, 95),
        "overhead_p95_ms": pct(overhead_ms, 95),
        # Mean milliseconds of a delivery in each part (they add up to its latency).
        "latency_parts_ms": {k: round(sum(v) / len(v)) if v else None for k, v in parts.items()},
        "delivered": len(took),
        "deliveries_span_s": round(span, 1),
        "all_within_cycle": finished_in_cycle,
        "failed": failed,
        "host_cpu_s": round(cpu, 2),
        "host_peak_rss_mb": round(rss_of(host_pid)),
    }
    return done[0], timing


# ---- 5. a big reconcile, on state built in place ---------------------------------
def big_reconcile(storage: str, n: int, scale: float, report: Report) -> None:
    """A change-token expiry on an org of `n` linked people. Its first load would take
    hours here, so the state is built in place (benchmarks.world, link_in_place) and one
    ordinary cycle saves the delta links; the reconcile after their expiry is measured."""
    c, le = n // 2, n - n // 2
    with open_world(storage, scale, "reconcile") as w:
        started = time.monotonic()
        w.control(
            "POST",
            "/prepare",
            json={
                "dynamics": {"contacts": c, "leads": le},
                "copy_to_marketo": 0.0,
                "linked_state": {"storage": w.storage, "prefix": w.prefix},
            },
        )
        built = time.monotonic() - started
        w.setup()
        first = w.cycle()
        wrote = {k: v for k, v in first.summary.get("counts", {}).items() if v}
        if wrote:
            raise RuntimeError(
                f"the state built in place is out of step with the engine: "
                f"its first cycle did {wrote}"
            )
        w.dynamics_admin("POST", "events", json={"event": "expire-change-tokens"})
        w.wait_interval()
        m = w.cycle()
        report(
            result(
                f"reconcile, {n:,} people (change tokens expired)",
                n,
                m,
                [Work(contacts_read=c, leads_read=le, expired=True)],
                state_built_in_place_s=round(built, 1),
                first_cycle={
                    "wall_s": round(first.real_wall_s, 1),
                    "peak_rss_mb": round(first.peak_rss_mb),
                },
            )
        )
