"""The sync health page (`GET /api/dashboard`): one self-contained HTML document.

Charts are inline SVG drawn here, on the server, and the styles are inline too: no
script, no CDN, no web font, so the page renders from a locked-down admin laptop or an
offline browser exactly as in the screenshot, and nothing on it can leak to a third
party. Everything shown comes from the status document (sync_core.health) and the last
7 days of cycle rows; every text is HTML-escaped, since error messages echo values that
came from the two systems.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_core.health import build_status, cycle_view
from sync_core.quota import QUOTA_TZ
from sync_core.runtime import build_store
from sync_core.settings import Settings
from sync_core.state import StateStore

DAYS = 7
BUCKET_HOURS = 6  # 28 bars over the week
LATEST_ERRORS = 15
COLORS = {"marketo": "#5c4ee5", "dynamics": "#0b7a75", "bad": "#c62828", "quota": "#b26a00"}


@dataclass
class Series:
    name: str
    color: str
    values: list[float]


async def history(store: StateStore, settings: Settings, now: datetime) -> dict[str, Any]:
    """Per-bucket throughput, lag, errors; per quota day, Marketo calls."""
    start = now - timedelta(days=DAYS)
    n = DAYS * 24 // BUCKET_HOURS
    to_m, to_d, rejected, failed, lag = ([0.0] * n for _ in range(5))
    rows = sorted(
        (cycle_view(r) for r in await store.cycles_since(start)), key=lambda c: str(c["started"])
    )
    previous_ok: datetime | None = None
    for c in rows:
        at = datetime.fromisoformat(str(c["started"]))
        i = min(n - 1, int((at - start).total_seconds() // (BUCKET_HOURS * 3600)))
        if i < 0:
            continue
        to_m[i] += c["toMarketo"] + c["createdInMarketo"]
        to_d[i] += c["toDynamics"]
        rejected[i] += c["rejected"]
        failed[i] += c["outcome"] in ("failed", "stopped")
        if c["outcome"] in ("succeeded", "partial"):
            ended = datetime.fromisoformat(str(c["ended"] or c["started"]))
            if previous_ok is not None:
                # A change made just after one good cycle waits until the next one ends.
                lag[i] = max(lag[i], (ended - previous_ok).total_seconds() / 60)
            previous_ok = ended
    days = [(now.astimezone(QUOTA_TZ) - timedelta(days=d)).date() for d in range(DAYS - 1, -1, -1)]
    used = [float(await store.get_value("quota", d.isoformat()) or 0) for d in days]
    labels = [(start + timedelta(hours=BUCKET_HOURS * i)) for i in range(n)]
    return {
        "labels": [t.strftime("%a %H:%M") for t in labels],
        "toMarketo": to_m,
        "toDynamics": to_d,
        "rejected": rejected,
        "failed": failed,
        "lagMinutes": lag,
        "quotaDays": [d.strftime("%a %d") for d in days],
        "quotaUsed": used,
        "quotaBudget": settings.sync_marketo_daily_quota * settings.sync_marketo_quota_share,
    }


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def bar_chart(
    title: str,
    labels: list[str],
    series: list[Series],
    unit: str,
    *,
    limit: float | None = None,
    label_every: int = 4,
    show_values: bool = False,
) -> str:
    """A stacked bar chart as inline SVG, with a title, y scale and optional limit line."""
    width, height, left, bottom, top = 640, 200, 48, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max([*totals, limit or 0, 1.0])
    scale = plot_h / peak
    step = plot_w / max(1, len(labels))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" class="tick">'
        f"{_e(_num(peak))}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for i, label in enumerate(labels):
        x = left + i * step
        y = float(top + plot_h)
        for s in series:
            h = s.values[i] * scale
            if h > 0:
                y -= h
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" '
                    f'height="{h:.1f}" fill="{s.color}"><title>{_e(label)}: {_e(s.name)} '
                    f"{_e(_num(s.values[i]))} {_e(unit)}</title></rect>"
                )
        if show_values and totals[i]:
            # Small bars under a high limit line stay readable with their number on top.
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'class="tick">{_e(_num(totals[i]))}</text>'
            )
        if i % label_every == 0:
            parts.append(f'<text x="{x + 2:.1f}" y="{height - 10}" class="tick">{_e(label)}</text>')
    if limit:
        y = float(top + plot_h - limit * scale)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" '
            f'stroke="{COLORS["bad"]}" stroke-dasharray="4 3"/>'
            f'<text x="{width - 10}" y="{y - 3:.1f}" text-anchor="end" class="tick">'
            f"budget {_e(_num(limit))}</text>"
        )
    parts.append("</svg>")
    legend = " ".join(
        f'<span class="key"><i style="background:{s.color}"></i>{_e(s.name)}</span>' for s in series
    )
    return (
        f"<figure><figcaption>{_e(title)} <small>({_e(unit)})</small></figcaption>"
        f'{"".join(parts)}<div class="legend">{legend}</div></figure>'
    )


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f5f6f8;color:#1d1f23}
header{background:#1d1f23;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0}header p{margin:4px 0 0;color:#c9ccd1;font-size:13px}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));
gap:16px}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 8px}
.tiles{display:flex;gap:12px;flex-wrap:wrap}
.tile{flex:1;min-width:110px;background:#f0f2f5;border-radius:6px;padding:8px 10px}
.tile b{display:block;font-size:22px}.tile span{font-size:12px;color:#555}
.ok{color:#1b7a33}.bad{color:#c62828}.warn{color:#b26a00}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;vertical-align:top}
figure{margin:0}figcaption{font-weight:600;font-size:13px;margin-bottom:4px}
.chart{width:100%;height:auto}.tick{font-size:10px;fill:#555}
.legend{font-size:12px;color:#444}.key{margin-right:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""


def render(status: dict[str, Any], hist: dict[str, Any], errors: list[dict[str, Any]]) -> str:
    last = status["cycles"][0] if status["cycles"] else None
    state = (
        ("no cycle yet", "warn")
        if last is None
        else (f"last cycle {last['outcome']}", "ok")
        if last["outcome"] in ("succeeded", "skipped")
        else (f"last cycle {last['outcome']}", "warn" if last["outcome"] == "partial" else "bad")
    )
    p, q = status["people"], status["quota"]
    # The filter's total is known only to Dynamics (status --live); the page makes no
    # API call, so it shows what the recent cycles filtered out instead.
    excluded = (
        (str(p["excludedByFilter"]), "excluded by the sync filter")
        if p["excludedByFilter"] is not None
        else (str(p["filteredOutLastCycles"]), "filtered out in the last cycles")
    )
    tiles = [
        (state[0], "", state[1]),
        (str(p["linked"]), "people linked", ""),
        (*excluded, ""),
        (str(p["retrying"]), "retrying", "warn" if p["retrying"] else ""),
        (str(p["rejectedLast24h"]), "rejected in 24 h", "bad" if p["rejectedLast24h"] else ""),
        (f"{q['used']:,} / {q['syncBudget']:,}", "Marketo calls today", ""),
    ]
    tile_html = "".join(
        f'<div class="tile"><b class="{c}">{_e(big)}</b><span>{_e(small)}</span></div>'
        for big, small, c in tiles
    )
    if status["failedInARow"]:
        tile_html += (
            f'<div class="tile"><b class="bad">{status["failedInARow"]}</b>'
            "<span>cycles failed in a row</span></div>"
        )
    lag_rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td>{_e(c['mode'])}</td>"
        f"<td>{_e(_ago(c['lagSeconds']))}</td></tr>"
        for c in status["cursors"]
    )
    backlog = (
        "".join(
            f"<tr><td>{_e(b['entity'])}</td><td>{_e(b['kind'])}</td>"
            f"<td>{_e('?' if b['remainingEstimate'] is None else b['remainingEstimate'])}</td>"
            f"<td>{_e(b['pageSavedAt'])}</td></tr>"
            for b in status["backlog"]
        )
        or '<tr><td colspan="4">none: every table is caught up</td></tr>'
    )
    tracking = ", ".join(
        f"{e}: {'on' if v else 'OFF (modifiedon fallback)' if v is False else '?'}"
        for e, v in status["changeTracking"].items()
    )
    act = status["activityLog"]["active"]
    holds = "".join(
        f"<tr><td>{_e(h['field'])}</td><td>{_e(h['direction'])}</td><td>{_e(h['count'])}</td>"
        f"<td>{_e(h['since'])}</td><td><code>python -m sync_core release --field "
        f"{_e(h['field'])} --direction {_e(h['direction'])}</code></td></tr>"
        for h in status["holds"]
    )
    if holds:
        tile_html += (
            f'<div class="tile"><b class="bad">{len(status["holds"])}</b>'
            "<span>fields held by the mass-change guard</span></div>"
        )
    field_rows = "".join(
        f"<tr><td>{_e(f['entity'])}</td><td>{_e(f['field'])}</td><td>{_e(f['column'])}</td>"
        f'<td>{_e(f["direction"])}</td><td class="{_field_class(f)}">'
        f"{_e(_field_state(f))}</td></tr>"
        for f in status["fields"]
    )
    error_rows = (
        "".join(
            f"<tr><td>{_e(str(e.get('at', ''))[:19])}</td><td>{_e(e.get('code'))}</td>"
            f"<td>{_e(e.get('operation'))} {_e(e.get('direction'))}</td>"
            f"<td>{_e(e.get('entity'))} {_e(e.get('marketoId') or '')}</td>"
            f"<td>{_e(e.get('message'))}</td></tr>"
            for e in errors
        )
        or '<tr><td colspan="5">no sync errors</td></tr>'
    )
    cycle_rows = "".join(
        f"<tr><td>{_e(str(c['started'])[:19])}</td><td>{_e(c['outcome'])}</td>"
        f"<td>{c['durationSeconds']:.1f} s</td><td>{c['toMarketo'] + c['createdInMarketo']}</td>"
        f"<td>{c['toDynamics']}</td><td>{c['collisions']}</td><td>{c['rejected']}</td>"
        f"<td>{c['apiCalls']['marketo']}/{c['apiCalls']['dynamics']}</td></tr>"
        for c in status["cycles"]
    )
    labels = hist["labels"]
    charts = [
        bar_chart(
            "Throughput, last 7 days",
            labels,
            [
                Series("to Marketo", COLORS["marketo"], hist["toMarketo"]),
                Series("to Dynamics", COLORS["dynamics"], hist["toDynamics"]),
            ],
            "people per 6 h",
        ),
        bar_chart(
            "Sync lag, last 7 days",
            labels,
            [Series("longest wait for a change", COLORS["dynamics"], hist["lagMinutes"])],
            "minutes",
        ),
        bar_chart(
            "Errors, last 7 days",
            labels,
            [
                Series("rejected writes", COLORS["bad"], hist["rejected"]),
                Series("failed cycles", "#555", hist["failed"]),
            ],
            "per 6 h",
        ),
        bar_chart(
            "Marketo API quota, last 7 days",
            hist["quotaDays"],
            [Series("calls by the sync", COLORS["quota"], hist["quotaUsed"])],
            "calls per day (US Central)",
            limit=hist["quotaBudget"],
            label_every=1,
            show_values=True,
        ),
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Marketo - Dynamics sync health</title><style>{STYLE}</style></head>
<body><header><h1>Marketo &#8644; Dynamics 365 sync health</h1>
<p>generated {_e(status["generatedAt"][:19])} UTC &middot; status schema {status["schema"]}
&middot; the same data as <code>GET /api/status</code></p></header>
<main>
<section id="summary"><h2>Now</h2><div class="tiles">{tile_html}</div></section>
<section id="lag"><h2>Cursors and lag</h2><table><tr><th>cursor</th><th>mode</th>
<th>oldest unsynced change at most</th></tr>{lag_rows}</table>
<p>change tracking: {_e(tracking)}; activity log:
{_e("on" if act else "OFF" if act is False else "?")}
{_e(status["activityLog"]["reason"])}</p></section>
<section id="throughput">{charts[0]}</section>
<section id="lag-chart">{charts[1]}</section>
<section id="errors-chart">{charts[2]}</section>
<section id="quota">{charts[3]}</section>
{_holds_section(holds)}
<section id="backlog"><h2>Backlog</h2><table><tr><th>table</th><th>kind</th>
<th>records left (estimate)</th><th>page saved</th></tr>{backlog}</table></section>
<section id="cycles"><h2>Last cycles</h2><table><tr><th>started (UTC)</th><th>outcome</th>
<th>took</th><th>&rarr; Marketo</th><th>&rarr; Dynamics</th><th>collisions</th>
<th>rejected</th><th>calls M/D</th></tr>{cycle_rows}</table></section>
<section id="latest-errors"><h2>Latest errors</h2><table><tr><th>at (UTC)</th><th>code</th>
<th>what</th><th>person</th><th>message</th></tr>{error_rows}</table></section>
<section id="fields"><h2>Field health</h2><table><tr><th>entity</th><th>Marketo</th>
<th>Dynamics</th><th>direction</th><th>state</th></tr>{field_rows}</table></section>
</main></body></html>
"""


def _holds_section(rows: str) -> str:
    if not rows:
        return ""
    return (
        '<section id="holds"><h2>Held by the mass-change guard</h2><table><tr><th>field</th>'
        "<th>direction</th><th>writes</th><th>since</th><th>release</th></tr>"
        f"{rows}</table></section>"
    )


def _field_state(f: dict[str, Any]) -> str:
    if f["active"] is None:
        return "not checked yet"
    return "active" if f["active"] else f"left out: {f['reason']}"


def _field_class(f: dict[str, Any]) -> str:
    return "" if f["active"] is None else "ok" if f["active"] else "bad"


async def _page(settings: Settings) -> str:
    now = datetime.now(UTC)
    store = build_store(settings)
    try:
        status = await build_status(store, settings, last=10, now=now)
        hist = await history(store, settings, now)
        errors = await store.list_errors(since=now - timedelta(days=DAYS), limit=LATEST_ERRORS)
    finally:
        store.close()
    return render(status, hist, errors)


async def dashboard_html(settings: Settings) -> str:
    return await _page(settings)
