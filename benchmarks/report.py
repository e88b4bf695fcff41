"""bench/results.md: the results as a table a person can read, and how they are computed.

The header states exactly how `wall_s` is derived from what was measured, and the
world knobs the run sets, so a reader can trust (or challenge) each figure; the targets
of the issue are checked row by row below the table, so a missed one is never hidden in
a column nobody reads.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks import limits

TARGET_CALLS_RATIO = 1.1
TARGET_BOUND_RATIO = 1.25
TARGET_PEOPLE_PER_HOUR = 500_000
TARGET_IDLE_CALLS = 4
TARGET_WEBHOOK_OVERHEAD_MS = 150
TARGET_RECONCILE_RSS_MB = 300


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def line(r: dict[str, Any]) -> str:
    """One console line per result, while the run goes on."""
    c, mc, cr = r["calls"], r["min_calls"], r["calls_ratio"]
    return (
        f"{r['scenario']}: {r['outcome']}, {_n(r['wall_s'], 1)} s, "
        f"Marketo {c['marketo']} calls (min {mc['marketo']}, {_ratio(cr['marketo'])}), "
        f"Dynamics {c['dynamics']} (min {mc['dynamics']}, {_ratio(cr['dynamics'])}), "
        f"bound {_n(r['bound_s'], 1)} s ({r['binding_limit']}), "
        f"CPU {r['cpu_s']:.1f} s, RSS {r['peak_rss_mb']} MB"
    )


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | people | wall_s | people/h | Marketo calls (min, ratio) | "
        "Dynamics calls (min, ratio) | bound_s | bound_ratio | binding limit | "
        "cpu_s (per 1,000) | peak RSS MB |\n|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|\n"
    )
    rows = []
    for r in results:
        c, mc, cr = r["calls"], r["min_calls"], r["calls_ratio"]
        per = r["cpu_s_per_1000_people"]
        cpu = f"{r['cpu_s']:.1f}" + (f" ({per:.1f})" if per is not None else "")
        rows.append(
            f"| {r['scenario']} | {_n(r['people'])} | {_n(r['wall_s'], 1)} | "
            f"{_n(r['people_per_hour'])} | {c['marketo']:,} ({mc['marketo']:,}, "
            f"{_ratio(cr['marketo'])}) | {c['dynamics']:,} ({mc['dynamics']:,}, "
            f"{_ratio(cr['dynamics'])}) | {_n(r['bound_s'], 1)} | {_ratio(r['bound_ratio'])} | "
            f"{r['binding_limit']} | {cpu} | {r['peak_rss_mb']} |"
        )
    return head + "\n".join(rows) + "\n"


#: A delivery's latency, split (benchmarks.scenarios, deliveries_during_cycle).
LATENCY_PARTS = ("api", "rate", "queued", "table", "local", "hop")


def webhook_table(results: list[dict[str, Any]]) -> str:
    hooks = [r for r in results if "p95_ms" in r]
    if not hooks:
        return ""
    out = [
        "| scenario | deliveries | answered 200 | p50_ms | p95_ms | p99_ms | "
        "in the function p50 / p95 / p99 ms | "
        "API calls p95 ms | overhead p95 ms | mean ms: API / rate wait / queued / "
        "Table Storage / local / hop | failed (why) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in hooks:
        failed = "; ".join(f"{n} {why}" for why, n in r["failed"].items()) or "none"
        parts = r.get("latency_parts_ms") or {}
        split = " / ".join(_n(parts.get(k)) for k in LATENCY_PARTS)
        out.append(
            f"| {r['scenario']} | {r['people']} | {r['delivered']} | {_n(r['p50_ms'])} | "
            f"{_n(r['p95_ms'])} | {_n(r['p99_ms'])} | "
            f"{_n(r.get('function_p50_ms'))} / {_n(r.get('function_p95_ms'))} / "
            f"{_n(r.get('function_p99_ms'))} | {_n(r['api_p95_ms'])} | "
            f"{_n(r['overhead_p95_ms'])} | {split} | {failed} |"
        )
    return "\n".join(out) + "\n"


def breakdown(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        m = r["measured"]
        parts = [
            f"**{r['scenario'].strip()}** — measured {m['wall_s']:.1f} s at scale "
            f"{m['time_scale']:g}: {m['waited_s']:.1f} s waiting, {m['local_s']:.1f} s "
            f"local (CPU: the sync {r['cpu_s']:.1f} s, Azurite "
            f"{m['azurite_cpu_s']:.1f} s, the emulators {m['emulator_cpu_s']:.1f} s)."
        ]
        for system in ("marketo", "dynamics"):
            calls = ", ".join(f"{k} {v}" for k, v in r["calls_by_endpoint"][system].items())
            parts.append(f"{system.capitalize()}: {calls or 'none'}.")
        bounds = ", ".join(f"{k} {v:,.1f} s" for k, v in r["bounds"].items() if v)
        parts.append(f"Bounds: {bounds or 'none'}.")
        if r.get("throttled") and any(r["throttled"].values()):
            parts.append(f"Throttled answers: {r['throttled']}.")
        out.append(" ".join(parts))
    return "\n\n".join(out) + "\n"


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    scale = meta["time_scale"]
    full = " FULL=1" if meta["sizes"] == "full" else ""
    took = meta.get("duration_s", 0)
    load = (meta["load_average"][0], meta.get("load_average_now", ["?"])[0])
    return f"""# Benchmark results

Generated by `python -m benchmarks` (`make bench{full}`): {meta["sizes"]} sizes, started
{meta["started"]}, {took:,} s of wall time on this machine, load average {load[0]} at the
start and {load[1]} at the end (other work on the machine adds to the unscaled part of
`wall_s`). Every figure in the tables is measured; only the capacity section scales them
up, and says from what.

## How the figures are computed

- **World.** Marketo and Dynamics emulators in the `production` profile (emulators/README.md,
  "World profiles"), time compressed by {scale:g} (one real second takes {scale * 1000:g} ms).
  The sync is the real code path of the timer function: `run_cycle` in a process of its own,
  over HTTP (Dynamics over TLS), state in Azurite Table Storage. Knobs set on top of the
  profile: Marketo's real Get Leads page size (the profile's 100 a page is marked "not real");
  token lifetimes of a real hour; the mass-change guard off (a mass update is what is
  measured) and one cycle allowed to finish a whole load (in Azure a load past the 480 s
  budget continues in the next timer run).
- **wall_s** (real-time equivalent) = `(W - U) + U / {scale:g}`. `W` is the measured wall
  time of `run_cycle`. `U` is the time within `W` during which at least one wait was running
  in either process: a sleep of the emulators (modelled latency and server time) or of the sync
  (pacing to the rate windows, the execution-time budget, Retry-After, back-off) — each
  recorded as [start, start + requested duration] on the machine's monotonic clock and joined
  across processes. Only `U` is scaled back; the rest (`W - U`: the sync's CPU, Azurite, the
  emulators' own CPU, the event loops) counts at face value. Two consequences: local work that
  would overlap a longer real wait is counted in full, so `wall_s` errs high; and a rate
  window a CPU-bound compressed run never fills costs nothing here — which is why `bound_s`
  is shown beside it.
- **Check rows**: the same 1,000-record first load in real time (scale 1) and compressed.
  How close their `wall_s` and calls are shows how far the conversion holds (the sync's
  Dataverse pacer sizes its batches from measured round trips, which compressed include the
  local stack's share, so compressed runs send smaller batches).
- **Between cycles** the harness lets a 5-minute interval pass (or the last cycle's own
  duration, if longer): compressed, the gap lasts the feed overlap ({120 * scale:g} s, longer
  than the late-commit delay), and Marketo's background activity is generated during it at the
  rate that puts into the next feed window what production's would hold (20,000 an hour over
  the interval plus the 2-minute overlap). It is paused during cycles, whose unscaled local
  time would otherwise stand for a many times longer stretch of the instance's day.
- **calls** are the API calls each emulator counted (throttled answers included; token
  requests excluded). **min_calls** is the fewest calls the batch and page limits allow for
  the scenario's work (`benchmarks/limits.py`, `min_calls`: 300 records a Marketo call and
  activity page, 5,000 rows a Dataverse page, 1,000 operations a `$batch`; our own writes
  coming back through the feeds count, since a feed cannot be filtered by who made a change;
  pages that only scan background activity, metadata reads and the per-process activity-type
  look-up do not). `calls_ratio` = calls / min_calls.
- **bound_s** is the largest of the times the limits impose on the calls made: Marketo calls
  ÷ the sync's share of the rate (50 per 20 s); Marketo server time ÷ the sync's 5 calls in
  flight; the days of the cycle's 80 % share of 50,000 calls; Dataverse calls ÷ 6,000 per
  5 min; Dataverse execution time (as the emulator counts it against the limit) ÷ 1,200 s per
  5 min; Dataverse server time ÷ 52 in flight. `binding_limit` names it;
  `bound_ratio` = wall_s / bound_s.
- **cpu_s** and **peak_rss_mb** are the sync's process alone (`getrusage`; one fresh process
  per cycle, like a cold worker; its RSS after imports is in `results.json` as
  `measured.baseline_rss_mb`). `cpu_s (per 1,000)` divides by the people synced.
- **Webhook rows** run in real time (scale 1). Latency is a delivery's time as Marketo's
  emulator waited for the function; "API calls" the part of it during which the function
  waited for Marketo or Dataverse (its own calls and the shared Marketo calls its
  requests rode in), "overhead" the rest. The mean split claims each moment once, in
  this order: an API call; a wait for the sync's share of the rate window before a
  call; a request queued behind a shared Marketo call of its kind already in flight;
  Table Storage; local (parsing, the event loop); "hop" is the time outside the
  function (Marketo's emulator calling it over HTTP, the local functions host).
  "In the function" is the same without the hop, which stands for Azure's functions host
  and the network between Marketo and Azure, and here includes Marketo's emulator, one
  process also serving the cycle's calls; the webhook target is judged on it.
  Percentiles are of the deliveries answered 200; `people` counts all
  deliveries, `people_per_hour` those answered per hour while they ran; `wall_s`, the calls
  and the bounds are the cycle's that ran meanwhile (the calls were counted over it);
  `cpu_s` and `peak_rss_mb` are the functions host's.

## Results

{table(results)}
{webhook_table(results)}
## Targets

{targets(results)}
## Capacity

{capacity(results)}
## Calls per endpoint and where the time went

{breakdown(results)}"""


def targets(results: list[dict[str, Any]]) -> str:
    """Each target of the issue, with every result that misses it (check rows aside)."""
    rows = [r for r in results if not r["scenario"].strip().startswith("check")]
    out = []

    calls = []
    for r in rows:
        missed = [
            f"{s.capitalize()} {r['calls_ratio'][s]:.2f} ({r['calls'][s]:,} for "
            f"{r['min_calls'][s]:,})"
            for s in ("marketo", "dynamics")
            if (r["calls_ratio"][s] or 0) > TARGET_CALLS_RATIO
        ]
        if missed:
            calls.append(f"  - {r['scenario'].strip()}: {', '.join(missed)}")
    out.append(
        f"- **calls_ratio ≤ {TARGET_CALLS_RATIO}**: met by "
        f"{len(rows) - len(calls)} of {len(rows)} results; missed by:"
    )
    out += calls or ["  - none"]

    big = [r for r in rows if r["people"] >= 100_000 and "p95_ms" not in r]
    if big:
        out.append(
            f"- **bound_ratio ≤ {TARGET_BOUND_RATIO}** (100k scenarios): "
            + "; ".join(f"{r['scenario']} {_ratio(r['bound_ratio'])}" for r in big)
        )
    else:
        out.append(
            f"- **bound_ratio ≤ {TARGET_BOUND_RATIO}** applies to the 100k scenarios "
            "(`make bench FULL=1`); this run's ratios are in the table."
        )

    steady = [r for r in rows if r["scenario"].startswith("steady state")]
    if steady:
        out.append(
            f"- **≥ {TARGET_PEOPLE_PER_HOUR:,} people per hour in steady state** "
            "(and what the binding limit allows for the calls made):"
        )
        for r in steady:
            allowed = r["people"] / r["bound_s"] * 3600 if r["bound_s"] else None
            verdict = "met" if (r["people_per_hour"] or 0) >= TARGET_PEOPLE_PER_HOUR else "missed"
            out.append(
                f"  - {r['scenario']}: {verdict}, {_n(r['people_per_hour'])}/h; "
                f"{r['binding_limit']} allows {_n(allowed)}/h"
            )

    for r in rows:
        name = r["scenario"].strip()
        total = r["calls"]["marketo"] + r["calls"]["dynamics"]
        types = r["calls_by_endpoint"]["marketo"].get(
            "GET /rest/v1/activities/external/types.json", 0
        )
        if name.startswith("idle cycle, quiet"):
            verdict = "met" if total <= TARGET_IDLE_CALLS else "missed"
            out.append(
                f"- **idle cycle ≤ {TARGET_IDLE_CALLS} calls** on a quiet instance: "
                f"{verdict}, {total} calls ({types} of them the activity-type look-up "
                "a new worker process makes once)."
            )
        if name.startswith("idle cycle, 5 minutes"):
            out.append(
                f"- idle cycle with {r.get('background_activities', 0):,} background "
                f"activities in its feed window: {total} calls."
            )
    for r in rows:
        if "p95_ms" not in r:
            continue
        name = r["scenario"]
        if r.get("p95_ms") is not None and r.get("api_p95_ms") is not None:
            limit = r["api_p95_ms"] + TARGET_WEBHOOK_OVERHEAD_MS
            own = r.get("function_p95_ms")
            verdict = "met" if own is not None and own <= limit else "missed"
            out.append(
                f"- **webhook p95 ≤ its API calls + {TARGET_WEBHOOK_OVERHEAD_MS} ms**, "
                f"{name}: {verdict}, p95 in the function {_n(own)} ms against {limit:,} ms "
                f"(as Marketo's emulator waited: {r['p95_ms']:,} ms)."
            )
        if r.get("failed"):
            out.append(
                f"  - {sum(r['failed'].values())} of {r['people']} deliveries failed "
                f"({'; '.join(r['failed'])}); the percentiles are of the "
                f"{r['delivered']} answered 200."
            )
    for r in rows:
        if r["scenario"].startswith("reconcile"):
            verdict = "met" if r["peak_rss_mb"] <= TARGET_RECONCILE_RSS_MB else "missed"
            out.append(
                f"- **reconcile peak RSS ≤ {TARGET_RECONCILE_RSS_MB} MB**: {verdict} at "
                f"{r['people']:,} people, {r['peak_rss_mb']} MB"
                + (
                    ""
                    if r["people"] >= 1_000_000
                    else " (the target is for 1,000,000: `--reconcile 1000000`)"
                )
                + "."
            )
    with_people = [
        r
        for r in rows
        if r["people"] and r["cpu_s_per_1000_people"] is not None and "p95_ms" not in r
    ]
    if with_people:
        out.append(
            "- **CPU of the sync's process per 1,000 people**: "
            + "; ".join(f"{r['scenario']} {r['cpu_s_per_1000_people']:.1f} s" for r in with_people)
            + "."
        )
    return "\n".join(out) + "\n"


# ---- capacity: what the measured calls per person mean for bigger orgs ---------------
CAPACITY_SIZES = (100_000, 1_000_000, 10_000_000)
#: Endpoints whose calls grow with the people handled; the others (metadata, activity
#: types, the feed's start) are counted once whatever the size.
GROWING = {
    "marketo": ("GET /rest/v1/leads.json", "POST /rest/v1/leads.json"),
    "dynamics": ("POST $batch", "GET contacts", "GET leads"),
}
#: Bulk lead extract (bulk-extract.md): 500 MB of export a day; a job takes about four
#: calls (create, enqueue, a status poll, the file). The bytes a person takes in a CSV of
#: id, email and dynamicsId are an estimate: a 7-digit id, a 30-character address, a
#: 36-character GUID and the separators.
BULK_DAILY_BYTES = 500 * 1024 * 1024
BULK_JOB_CALLS = 4
EXPORT_BYTES_PER_PERSON = 80
OPERATIONS = (
    ("first load into an empty Marketo", "into an empty Marketo"),
    ("first load, people on both sides", "linked by email"),
    ("full reconcile (change tokens expired)", "reconcile,"),
)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _largest(results: list[dict[str, Any]], marker: str) -> dict[str, Any] | None:
    rows = [
        r
        for r in results
        if marker in r["scenario"] and not r["scenario"].startswith(("check", "  ")) and r["people"]
    ]
    return max(rows, key=lambda r: r["people"]) if rows else None


def _calls_at(r: dict[str, Any], system: str, people: int) -> float:
    by = r["calls_by_endpoint"][system]
    grow = sum(v for k, v in by.items() if k in GROWING[system])
    # Each metadata read (the one WhoAmI) is one $batch of GETs: counted once, not scaled.
    grow -= by.get("GET WhoAmI", 0) if system == "dynamics" else 0
    return sum(by.values()) - grow + grow * people / r["people"]


def projection(r: dict[str, Any], people: int) -> dict[str, float]:
    """Calls and times for `people`, scaled from one measured result."""
    f = people / r["people"]
    m = r["measured"]
    marketo, dynamics = _calls_at(r, "marketo", people), _calls_at(r, "dynamics", people)
    b = limits.bounds(
        round(marketo),
        round(dynamics),
        m["marketo_server_s"] * f,
        m["dynamics_server_s"] * f,
        m["dynamics_execution_s"] * f,
    )
    days = limits.quota_days(marketo)
    other = max(v for k, v in b.items() if "daily quota" not in k)
    # Whole days wait for the quota; the last day's share of the calls then takes its
    # share of the time the other limits impose.
    share = limits.MARKETO_DAILY_QUOTA * limits.MARKETO_QUOTA_SHARE
    last = (marketo - (days - 1) * share) / marketo if marketo else 0.0
    took = max(other, (days - 1) * limits.DAY_S + other * last)
    return {
        "marketo": marketo,
        "dynamics": dynamics,
        "limits_s": took,
        "quota_days": days,
        "measured_s": people / r["people_per_hour"] * 3600 if r["people_per_hour"] else 0,
    }


def capacity(results: list[dict[str, Any]]) -> str:
    out = [
        "| people | operation | Marketo calls | of a day's 50,000 | quota days (80 % share) | "
        "Dataverse calls | time the API limits allow | time at the rate measured here |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for label, marker in OPERATIONS:
        r = _largest(results, marker)
        if r is None:
            continue
        notes.append(f'{label}: from "{r["scenario"]}"')
        for people in CAPACITY_SIZES:
            p = projection(r, people)
            share = p["marketo"] / limits.MARKETO_DAILY_QUOTA
            out.append(
                f"| {people:,} | {label} | {p['marketo']:,.0f} | {share:.0%} | "
                f"{p['quota_days']} | {p['dynamics']:,.0f} | {duration(p['limits_s'])} | "
                f"{duration(p['measured_s'])} |"
            )
    if len(out) == 2:
        return "No first load or reconcile was measured.\n"
    text = "\n".join(out) + "\n\nScaled from: " + "; ".join(notes) + ".\n"
    linked = _largest(results, "linked by email")
    if linked is not None:
        people = CAPACITY_SIZES[-1]
        p = projection(linked, people)
        lookups = linked["calls_by_endpoint"]["marketo"].get("GET /rest/v1/leads.json", 0)
        lookups_at = lookups * people / linked["people"]
        export_days = math.ceil(people * EXPORT_BYTES_PER_PERSON / BULK_DAILY_BYTES)
        without = p["marketo"] - lookups_at + export_days * BULK_JOB_CALLS
        text += (
            f"\nA {people:,}-people first load with both sides populated makes "
            f"{p['marketo']:,.0f} Marketo calls: {_days(int(p['quota_days']))} of the cycle's "
            f"40,000-call share. {lookups_at:,.0f} of them are look-ups by email (Get Leads, "
            f"300 a call). A bulk lead extract of id, email and Dynamics id would replace them "
            f"with a few export jobs (about {BULK_JOB_CALLS} calls each), leaving "
            f"{without:,.0f} calls ({_days(limits.quota_days(without))} of quota), but the "
            f"export itself is capped at 500 MB a day: at about {EXPORT_BYTES_PER_PERSON} bytes "
            f"a person it takes {_days(export_days)}. Into an empty Marketo the sync looks "
            f"nothing up (it creates with `createOnly` by email, which skips the people who "
            f"exist; one such call that skips most of its people switches the run to "
            f"looking up first).\n"
        )
    return text
