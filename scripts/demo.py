"""`make demo`: run the sync end to end on the local stack and show what happened.

Starts Azurite, the Marketo and Dynamics emulators and the local functions host,
seeds a realistic world, then drives real cycles through the timer function and a
real-time create through the webhook, narrating each step, and prints the health page's
URL (on a terminal it waits for Enter before stopping, so the page can be opened).
Everything it started is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from emulators.actors import People
from emulators.stack import DYNAMICS_TENANT, WEBHOOK_SECRET, Stack, running_stack
from sync_core.admin.reports import status_lines
from sync_core.admin.setup import run_setup
from sync_core.settings import load_settings
from sync_core.state import Link
from sync_core.tablestore import TableStateStore as StateStore

SEED_CONTACTS = 150
SEED_LEADS = 100
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = RESET = ""


def step(title: str) -> None:
    print(f"\n{BOLD}== {title}{RESET}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


async def _links(store: StateStore) -> list[Link]:
    return [link async for link in store.iter_links()]


def run_timer(stack: Stack, store: StateStore) -> dict[str, Any]:
    """Fire the timer function through the functions host and read its cycle log row."""
    started = time.monotonic()
    r = httpx.post(
        f"{stack.functions_url}/admin/functions/sync_timer?wait=true",
        headers={"x-functions-key": stack.master_key},
        timeout=300,
    )
    r.raise_for_status()
    row = asyncio.run(store.recent_cycles(1))[0]
    counts = json.loads(row["counts"])
    calls = json.loads(row["apiCalls"])
    say(
        f"{GREEN if row['outcome'] == 'succeeded' else RED}{row['outcome']}{RESET} in "
        f"{time.monotonic() - started:.1f} s  "
        f"{DIM}(API calls: Marketo {calls['marketo']}, Dynamics {calls['dynamics']}){RESET}"
    )
    shown = {k: v for k, v in counts.items() if v}
    say(
        "nothing to do"
        if not shown
        else ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
    )
    if row.get("message"):
        say(row["message"])
    return {"counts": counts, "row": row}


def main() -> int:
    t0 = time.monotonic()
    step("Starting the local stack (Azurite, Marketo, Dynamics over TLS, functions host)")
    with running_stack() as stack:
        say(f"Marketo  {stack.marketo_url}")
        say(f"Dynamics {stack.dynamics_url}")
        say(f"Functions {stack.functions_url}/api/sync-person")
        people = People(stack.marketo_url, stack.dynamics_url, stack.ca_bundle, DYNAMICS_TENANT)
        store = StateStore.from_connection_string(stack.storage)
        asyncio.run(store.ensure_tables())

        step("Seeding a realistic world")
        seeded = people.dynamics_admin(
            "POST", "seed", json={"contacts": SEED_CONTACTS, "leads": SEED_LEADS, "seed": 7}
        )
        say(f"Dynamics: {seeded}")
        shared = []
        for entity in ("contact", "lead"):
            r = people.dynamics("GET", f"{entity}s?$select=emailaddress1,firstname,lastname&$top=3")
            shared += [row for row in r.json()["value"] if row.get("emailaddress1")][:3]
        for row in shared:
            people.marketo_create(
                email=row["emailaddress1"].upper(), firstName=row.get("firstname"),
                lastName=row.get("lastname"), leadSource="Webinar",
            )  # fmt: skip
        people.marketo_admin("POST", "seed", json={"count": 40, "seed": 7})
        say(f"Marketo: 40 Marketo-only people, plus {len(shared)} sharing an email with Dynamics")

        step("python -m sync_core setup")
        for s in asyncio.run(run_setup(load_settings(stack.env))):
            if s.outcome != "exists":
                say(f"{s.system:<8} {s.outcome:<9} {s.item}")

        step("Cycle 1: initial load (timer function)")
        run_timer(stack, store)

        step("People edit records in both systems")
        links = asyncio.run(_links(store))
        contact = next(link for link in links if link.entity == "contact")
        lead = next(link for link in links if link.entity == "lead")
        other = next(link for link in links if link.entity == "contact" and link is not contact)
        people.dyn_edit("contact", contact.dynamics_id, jobtitle="VP Sales (set in Dynamics)")
        people.marketo_edit(contact.marketo_id, title="VP Marketing (set in Marketo)", city="Leeds")
        say(f"contact {contact.marketo_id}: title on both sides (Dynamics wins); city in Marketo")
        people.dyn_edit("lead", lead.dynamics_id, jobtitle="CTO (set in Dynamics)")
        people.marketo_edit(lead.marketo_id, title="CIO (set in Marketo)")
        say(f"lead {lead.marketo_id}: title edited on both sides (Marketo should win)")
        people.dynamics_admin(
            "POST", "rules",
            json={"table": "contact", "condition": "jobtitle eq 'Intern'",
                  "message": "Interns are not tracked in the CRM", "on": ["update"]},
        )  # fmt: skip
        people.marketo_edit(other.marketo_id, title="Intern")
        say(f"contact {other.marketo_id}: a marketer sets a title a Dynamics business rule rejects")

        step("Cycle 2: delta sync")
        run_timer(stack, store)
        c = people.dyn_get("contact", contact.dynamics_id) or {}
        p = people.person(contact.marketo_id) or {}
        say(f"contact {contact.marketo_id}: title {c.get('jobtitle')!r} in Dynamics,")
        say(f"  {p.get('title')!r} in Marketo; city {p.get('city')!r} in Marketo")
        lrec = people.dyn_get("lead", lead.dynamics_id) or {}
        say(f"lead {lead.marketo_id}: Dynamics title {lrec.get('jobtitle')!r}")
        errors = asyncio.run(store.list_errors())
        say(f"{len(errors)} sync errors recorded (python -m sync_core errors lists them all):")
        for e in errors[:5]:
            who = f"person {e['marketoId']}" if e.get("marketoId") else f"record {e['dynamicsId']}"
            say(f"  {RED}{e['code']}{RESET} {e['operation']} {e['direction']} {who}")
            say(f"    {e['message']}")

        step("Real time: 'Sync Person to Microsoft' from a Marketo trigger campaign")
        people.marketo_admin(
            "POST", "webhooks",
            json={
                "name": "Sync Person to Microsoft",
                "url": f"{stack.functions_url}/api/sync-person",
                "method": "POST",
                "template": '{"leadId": {{lead.Id}}, "syncAs": "lead"}',
                "requestTokenEncoding": "json",
                "responseType": "json",
                "headers": {"x-functions-key": stack.function_key, "x-sync-secret": WEBHOOK_SECRET},
                "responseMappings": [{"attribute": "status", "field": "leadStatus"}],
                "trigger": "personCreated",
                "excludeUsers": ["sync-app"],
            },
        )  # fmt: skip
        started = time.monotonic()
        new_id = people.marketo_create(
            email="new.prospect@example.com", firstName="Nova", lastName="Prospect", company="Acme"
        )
        people.marketo_admin("POST", "webhooks/wait")
        call = people.marketo_admin("GET", "webhooks/calls")[-1]
        took = time.monotonic() - started
        say(f"person {new_id} created in Marketo; webhook answered {call.get('status')}")
        say(f"  in {took:.2f} s: {call.get('response')}")
        person = people.person(new_id) or {}
        dyn_id, dyn_type = person.get("dynamicsId"), person.get("dynamicsType")
        say(f"the person now carries Dynamics id {dyn_id} ({dyn_type})")

        step("Cycle 3: nobody edited anything")
        run_timer(stack, store)

        step("What the sync recorded")
        for row in asyncio.run(store.recent_cycles(5))[::-1]:
            took = float(row["durationSeconds"])
            say(f"cycle {row['cycleId']} {row['outcome']:<9} {took:6.2f} s  {row['started']}")
        events = asyncio.run(store.person_events(contact.marketo_id))
        say(
            f"person {contact.marketo_id} sync log: "
            + "; ".join(f"{e['direction']} {json.loads(e['fields'])}" for e in events[::-1])
        )

        step("Sync health")
        dashboard = f"{stack.functions_url}/api/dashboard?code={stack.function_key}"
        doc = httpx.get(f"{stack.functions_url}/api/status?code={stack.function_key}").json()
        for line in status_lines(doc)[len(doc["cycles"]) :]:
            say(line)
        page = httpx.get(dashboard)
        say(f"dashboard   {dashboard}  ({page.status_code}, {len(page.content):,} bytes)")
        say(f"status JSON {stack.functions_url}/api/status?code={stack.function_key}")
        if sys.stdin.isatty():
            # Interactive: keep the stack up so the page can be opened in a browser.
            input("   open the dashboard, then press Enter to stop everything ")

        step("Stopping everything")
    say(f"done in {time.monotonic() - t0:.1f} s; no process left running")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped")
        sys.exit(130)
