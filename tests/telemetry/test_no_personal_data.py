"""No personal data in any log line: everything a demo-sized run logs (every logger of
the sync and the libraries it uses, at DEBUG) is captured and searched for the seeded
people's emails, names, phone numbers and edited values, and for the secrets.

The run is the demo's, in-process so every record is seen: 250 Dynamics records and 46
Marketo people, setup, the initial load, edits on both sides with a collision and a
business-rule rejection, a webhook create (owner by email), an idle cycle, then
`status`, `plan` and `explain`. The emulators' own loggers stand in for the vendors'
services and are left out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

import sync_core.runtime as runtime
from emulators.functions import create_host
from sync_core import entrypoints, telemetry
from sync_core.admin.dryrun import dry_run
from sync_core.admin.explain import explain
from sync_core.health import read_status
from tests.scenarios.world import World, open_world
from tests.support.functions import fresh_function_app
from tests.support.servers import running_server

KEY = "pii-function-key"
VENDOR_LOGGERS = ("emulators", "uvicorn", "starlette")


def personal_values(world: World) -> set[str]:
    values: set[str] = {"sales-user@emulator.local"}
    cols = ("emailaddress1", "firstname", "lastname", "jobtitle", "telephone1",
            "mobilephone", "address1_line1")  # fmt: skip
    for entity in ("lead", "contact"):
        rows = world.dynamics("GET", f"{entity}s?$select={','.join(cols)}").json()["value"]
        for row in rows:
            values.update(str(row[c]) for c in cols if row.get(c))
    for start in (1, 301):
        ids = ",".join(str(i) for i in range(start, start + 300))
        body = world.marketo(
            "POST", "/rest/v1/leads.json", params={"_method": "GET"},
            data={"filterType": "id", "filterValues": ids,
                  "fields": "email,firstName,lastName,title,phone,address"},
        )  # fmt: skip
        for p in body["result"]:
            values.update(str(v) for k, v in p.items() if k != "id" and v)
    # Short values ("CTO", "Kim") are ordinary words or ids in a log line; five
    # characters and more are specific enough to mean a leak.
    return {v for v in values if len(v) >= 5}


def test_a_demo_sized_run_logs_no_personal_data(
    azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    telemetry.install_log_context()
    caplog.set_level(logging.DEBUG)  # root at DEBUG: every logger's records reach caplog
    with ExitStack() as stack:
        world = open_world(stack, azurite, tmp_path)
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        host = create_host(fresh_function_app("function_app_for_pii"), function_key=KEY,
                           master_key="pii-master", run_timers=False)  # fmt: skip
        url = stack.enter_context(running_server(host))
        world.dynamics_admin("POST", "seed", json={"contacts": 150, "leads": 100, "seed": 7})
        world.marketo_admin("POST", "seed", json={"count": 40, "seed": 7})
        shared = world.dynamics("GET", "contacts?$select=emailaddress1,lastname&$top=6")
        for row in shared.json()["value"]:
            world.marketo_create(email=row["emailaddress1"].upper(), lastName=row["lastname"])
        world.setup()

        asyncio.run(entrypoints.run_scheduled_cycle())
        store = world.store()
        links = list(store.iter_links())
        store.close()
        contact = next(link for link in links if link.entity == "contact")
        lead = next(link for link in links if link.entity == "lead")
        world.dyn_edit("contact", contact.dynamics_id, jobtitle="VP Sales Zebrafish")
        world.marketo_edit(contact.marketo_id, title="VP Marketing Quokka", city="Leedsbury")
        world.dyn_edit("lead", lead.dynamics_id, jobtitle="Chief Narwhal")
        world.marketo_edit(lead.marketo_id, title="Chief Pangolin")
        world.dynamics_admin(
            "POST", "rules",
            json={"table": "contact", "condition": "jobtitle eq 'Intern Axolotl'",
                  "message": "Interns are not tracked", "on": ["update"]},
        )  # fmt: skip
        other = next(x for x in links if x.entity == "contact" and x is not contact)
        world.marketo_edit(other.marketo_id, title="Intern Axolotl")
        settings = world.settings()
        plan = asyncio.run(dry_run(settings))
        assert plan["updates"]  # the plan saw the edits
        asyncio.run(entrypoints.run_scheduled_cycle())

        new_id = world.marketo_create(email="nova.prospect@example.com", firstName="Novalee",
                                      lastName="Prospectorova", company="Acme Widgets")  # fmt: skip
        reply = httpx.post(
            f"{url}/api/sync-person?code={KEY}",
            json={"leadId": new_id, "syncAs": "lead", "assignTo": "sales-user@emulator.local"},
            headers={"x-sync-secret": "test-webhook-secret"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        asyncio.run(entrypoints.run_scheduled_cycle())
        asyncio.run(read_status(settings, live=True))

        async def explain_one(key: str) -> None:
            rt = await runtime.build_runtime(settings, ensure_tables=False)
            try:
                await explain(rt, key)
            finally:
                await rt.aclose()

        asyncio.run(explain_one("nova.prospect@example.com"))
        asyncio.run(explain_one(str(other.marketo_id)))
        secrets = {"sync-app-secret", "test-webhook-secret", "marketing-user-secret"}
        # The same run keeps the link counters `status` reads exact (creates, links by
        # email, the webhook's create): they agree with a scan of the links table.
        store = world.store()
        scanned: dict[str, int] = {}
        for link in store.iter_links():
            scanned[link.entity] = scanned.get(link.entity, 0) + 1
        assert store.link_counts() == scanned
        store.close()
        edited = {"VP Sales Zebrafish", "VP Marketing Quokka", "Leedsbury", "Chief Narwhal",
                  "Chief Pangolin", "Intern Axolotl", "Novalee", "Prospectorova"}  # fmt: skip
        values = personal_values(world) | edited
        runtime._credential.cache_clear()
        gc.collect()

    records = [r for r in caplog.records if not r.name.startswith(VENDOR_LOGGERS)]
    assert len(records) > 50  # the run really logged (HTTP lines, cycle summaries...)
    lines = []
    for r in records:
        text = r.getMessage()
        if r.exc_info:
            text += logging.Formatter().formatException(r.exc_info)
        lines.append(f"{r.name}: {text}")
    blob = "\n".join(lines)
    found = sorted(v for v in values | secrets if re.search(re.escape(v), blob, re.I))
    assert found == [], [next(line for line in lines if f.lower() in line.lower()) for f in found]
    # Every record made during a cycle or a webhook call carries its correlation id.
    cycle_lines = [r for r in records if r.getMessage().startswith("sync cycle {")]
    assert len(cycle_lines) == 3 and all(getattr(r, "correlation_id", "") for r in cycle_lines)
    assert len({r.correlation_id for r in cycle_lines}) == 3  # one id per cycle
    webhook = [r for r in records if getattr(r, "operation", "") == "webhook"]
    assert webhook and len({r.correlation_id for r in webhook}) == 1
