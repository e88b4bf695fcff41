"""The sync health page and the status endpoint, served by the project's FunctionApp
through the local functions host and rendered by a real headless Chromium.

A week of cycle history is recorded through the state store (as past cycles would have
left it), then real cycles run through the timer function against the emulators,
including a write a Dynamics business rule rejects. The page must show those numbers,
draw the charts server-side and reference nothing outside itself.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import sync_core.runtime as runtime
from emulators.functions import create_host
from sync_core.quota import QUOTA_TZ
from tests.scenarios.world import World, open_world
from tests.support.browser import dump_dom, screenshot
from tests.support.functions import fresh_function_app
from tests.support.servers import running_server

FUNCTION_KEY, MASTER_KEY = "dash-function-key", "dash-master-key"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


@pytest.fixture
def served(
    azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, str]]:
    with ExitStack() as stack:
        world = open_world(stack, azurite, tmp_path)
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)  # app settings of the function
        world.setup()
        host = create_host(
            fresh_function_app("function_app_for_dashboard"),
            function_key=FUNCTION_KEY,
            master_key=MASTER_KEY,
            run_timers=False,
        )
        url = stack.enter_context(running_server(host))
        yield world, url
        runtime._credential.cache_clear()
        gc.collect()


def past_week(world: World) -> int:
    """Cycle rows every 6 hours for the last 6 days; returns the people they moved."""
    store = world.store()
    now = datetime.now(UTC)
    moved = 0
    for n in range(24):
        started = now - timedelta(days=6, hours=-6 * n)
        counts = {"to_marketo": 3 + n % 5, "to_dynamics": n % 4, "rejected": int(n % 6 == 0)}
        moved += counts["to_marketo"] + counts["to_dynamics"]
        store.record_cycle(
            f"past{n:02d}",
            {"cycleId": f"past{n:02d}", "started": started.isoformat(),
             "ended": (started + timedelta(seconds=4)).isoformat(), "durationSeconds": 4.0,
             "outcome": "failed" if n == 9 else "succeeded", "message": "",
             "counts": counts, "apiCalls": {"marketo": 6, "dynamics": 5}},
        )  # fmt: skip
    for d in range(1, 7):
        day = (now.astimezone(QUOTA_TZ) - timedelta(days=d)).date().isoformat()
        store.set_values("quota", {day: str(900 + 150 * d)})
    store.close()
    return moved


def run_timer(url: str) -> None:
    r = httpx.post(
        f"{url}/admin/functions/sync_timer?wait=true",
        headers={"x-functions-key": MASTER_KEY},
        timeout=120,
    )
    assert r.status_code == 200


def test_status_endpoint_and_dashboard_in_a_browser(served: tuple[World, str], tmp_path: Path):
    world, url = served
    moved_before = past_week(world)
    for n in range(4):
        world.dyn_create("contact", lastname=f"Dash{n}", emailaddress1=f"dash{n}@example.com")
    world.dyn_create("lead", lastname="Lead", emailaddress1="lead@example.com")
    run_timer(url)
    world.dynamics_admin(
        "POST", "rules",
        json={"table": "contact", "condition": "jobtitle eq 'Intern'",
              "message": "Interns are not tracked in the CRM", "on": ["update"]},
    )  # fmt: skip
    store = world.store()
    contact = next(link for link in store.iter_links() if link.entity == "contact")
    store.close()
    world.marketo_edit(contact.marketo_id, title="Intern")
    run_timer(url)

    # The status document over HTTP: key required, the same schema as the CLI.
    assert httpx.get(f"{url}/api/status").status_code == 401
    assert httpx.get(f"{url}/api/dashboard").status_code == 401
    r = httpx.get(f"{url}/api/status", headers={"x-functions-key": FUNCTION_KEY})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["schema"] == 1
    latest = doc["cycles"][0]
    assert latest["outcome"] == "succeeded" and latest["rejected"] == 1
    assert doc["people"]["linked"] == 5 and doc["people"]["rejectedLast24h"] == 1

    page = httpx.get(f"{url}/api/dashboard?code={FUNCTION_KEY}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Self-contained: no script, and nothing to fetch (no src/href/url()/@import at all).
    assert not re.search(r"<script|\bsrc=|\bhref=|url\(|@import", page.text, re.I)

    dom = dump_dom(f"{url}/api/dashboard?code={FUNCTION_KEY}")
    assert "Dynamics 365 sync health</h1>" in dom
    tiles = dict(re.findall(r'<div class="tile"><b[^>]*>([^<]*)</b><span>([^<]*)</span>', dom))
    assert tiles["5"] == "people linked"
    assert any(v == "rejected in 24 h" and k == "1" for k, v in tiles.items())
    assert dom.count('<svg class="chart"') == 4
    # The throughput chart: one bar per non-empty series per 6-hour bucket, and its
    # tooltips add up to everything the week and today's cycles moved.
    throughput = dom.split('id="throughput"')[1].split("</section>")[0]
    moved = sum(int(n) for n in re.findall(r"to (?:Marketo|Dynamics) (\d+) people", throughput))
    assert moved == moved_before + 5  # today: 5 people created in Marketo
    quota = dom.split('id="quota"')[1].split("</section>")[0]
    assert "budget 40,000" in quota and quota.count("<rect") == 7
    errors = dom.split('id="latest-errors"')[1].split("</section>")[0]
    assert "Interns are not tracked in the CRM" in errors
    fields = dom.split('id="fields"')[1].split("</section>")[0]
    assert fields.count("<tr>") - 1 == len(doc["fields"]) and ">active<" in fields
    cycles = dom.split('id="cycles"')[1].split("</section>")[0]
    assert latest["started"][:19] in cycles

    shot = screenshot(f"{url}/api/dashboard?code={FUNCTION_KEY}", tmp_path / "dashboard.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SHOT)
    print(json.dumps({"screenshot": str(shot)}))
