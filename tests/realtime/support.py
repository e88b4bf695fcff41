"""Helpers for the real-time webhook tests: calling the function as Marketo does, and
snapshots of everything the function could write, so a test can prove that a refused
or failed call changed nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
from azure.core.exceptions import ResourceNotFoundError

from tests.scenarios.world import World

FUNCTION_KEY = "realtime-function-key"
MASTER_KEY = "realtime-master-key"
SECRET = "test-webhook-secret"  # World.env() sets SYNC_WEBHOOK_SECRET to this
SALES_USER_ID = "00000000-0000-4000-8000-00000000a002"
SYNC_USER_ID = "00000000-0000-4000-8000-00000000a001"
DYNAMICS_WRITES = ("POST", "PATCH", "PUT", "DELETE")
MARKETO_WRITES = ("POST /rest/v1/leads.json", "POST /rest/v1/activities/external.json")


class Webhook:
    """POSTs to /api/sync-person through the local functions host."""

    def __init__(self, functions_url: str, world: World) -> None:
        self.url = functions_url
        self.world = world
        self.http = httpx.Client(base_url=functions_url, timeout=60)

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(
        self,
        body: Any = None,
        *,
        raw: bytes | None = None,
        secret: str | None = SECRET,
        headers: dict[str, str] | None = None,
        key: str | None = FUNCTION_KEY,
    ) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        if secret is not None:
            sent["x-sync-secret"] = secret
        params = {"code": key} if key is not None else {}
        return self.http.post("/api/sync-person", content=content, headers=sent, params=params)

    def sync(self, lead_id: int | str, **extra: Any) -> httpx.Response:
        return self.call({"leadId": lead_id, **extra})


def dynamics_records(world: World, entity: str, marketo_id: int) -> list[dict[str, Any]]:
    """Every Dynamics lead/contact carrying this Marketo id."""
    table = {"lead": "leads", "contact": "contacts"}[entity]
    r = world.dynamics("GET", f"{table}?$filter=new_marketoid eq '{marketo_id}'")
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def activities(world: World, marketo_id: int, type_name: str | None = None) -> list[dict[str, Any]]:
    """The person's activity log; with `type_name`, only that custom activity type."""
    acts: list[dict[str, Any]] = world.marketo_admin("GET", f"people/{marketo_id}/activities")
    if type_name is None:
        return acts
    types = world.marketo("GET", "/rest/v1/activities/external/types.json")["result"]
    ids = {int(t["id"]) for t in types if t["name"] == type_name}
    return [a for a in acts if int(a["activityTypeId"]) in ids]


def attributes(activity: dict[str, Any]) -> dict[str, Any]:
    return {a.get("apiName") or a["name"]: a["value"] for a in activity.get("attributes", [])}


def _count(call: Any) -> int:
    try:
        return len(list(call()))
    except ResourceNotFoundError:  # the function has not created its tables yet
        return 0


def snapshot(world: World) -> dict[str, Any]:
    """Everything a webhook call could change, in both systems and the state tables."""
    mstats = world.marketo_admin("GET", "stats")
    dstats = world.dynamics_admin("GET", "stats")
    store = world.store()
    try:
        links, errors = _count(store.iter_links), _count(store.list_errors)
    finally:
        store.close()
    return {
        "marketo_writes": sum(
            int(mstats["endpoints"].get(name, {}).get("calls", 0)) for name in MARKETO_WRITES
        ),
        # Background activity (the production world's emails, visits) is not ours.
        "marketo_activities": int(mstats["activities"])
        - int(mstats.get("backgroundActivities", 0)),
        "dynamics_writes": sum(
            int(v["calls"])
            for k, v in dstats.items()
            if k.split(" ")[0] in DYNAMICS_WRITES and k != "POST token"
        ),
        "leads": world.dyn_count("lead"),
        "contacts": world.dyn_count("contact"),
        "links": links,
        "errors": errors,
    }
