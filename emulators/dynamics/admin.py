"""`/_emulator/` admin API: reset, seed, stats, latency, faults, limits, rules (business
rules and plug-in steps), field security, security roles, change-tracking switches and
token ageing, plus test tokens.

Tests drive scenarios ("a person edits a record", "the org throttles", "the delta token
expired") through these JSON endpoints instead of reaching into Python objects, so the
same scenarios work against an emulator running in another process.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from emulators.dynamics import security
from emulators.dynamics.org import Org
from emulators.dynamics.seed import seed
from emulators.dynamics.serverlogic import parse_rule
from emulators.dynamics.state import EndpointBehaviour, FieldPermission, State
from emulators.dynamics.world_admin import ROUTES, handle_world_admin


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _user_id(state: State, ref: str) -> str:
    u = state.users_by_client.get(ref) or state.users_by_id.get(ref)
    if u is None:
        raise AdminError(404, f"unknown user '{ref}'")
    return u.systemuserid


def handle_admin(app: Org, method: str, path: str, body: bytes) -> tuple[int, Any]:
    state: State = app.state
    data: Any = json.loads(body) if body.strip() else {}
    parts = [p for p in path.split("/") if p]
    head = parts[0] if parts else ""
    if head == "" and method == "GET":
        return 200, {
            "endpoints": [
                "reset",
                "seed",
                "stats",
                "latency",
                "faults",
                "limits",
                "rules",
                "field-security",
                "security",
                "change-tracking",
                "tokens",
                "users",
                *ROUTES,
            ]
        }
    if head in ROUTES:
        answer = handle_world_admin(app, method, parts, data)
        if answer is not None:
            return answer
    if head == "reset" and method == "POST":
        app.reset()
        return 200, {"reset": True}
    if head == "seed" and method == "POST":
        return 200, seed(
            state,
            int(data.get("contacts", 0)),
            int(data.get("leads", 0)),
            int(data.get("seed", state.cfg.seed)),
        )
    if head == "stats":
        if method == "GET":
            return 200, {k: v.as_dict() for k, v in sorted(state.stats.items())}
        if method in ("DELETE", "POST"):
            state.stats.clear()
            return 200, {}
    if head == "latency" and method in ("PUT", "POST"):
        b = state.behaviours.setdefault(data.get("endpoint", "*"), EndpointBehaviour())
        b.latency_ms = float(data.get("latency_ms", 0))
        b.per_operation_ms = float(data.get("per_operation_ms", 0))
        return 200, asdict(b)
    if head == "faults":
        if method == "DELETE":
            for b in state.behaviours.values():
                b.fault, b.remaining = None, None
            return 200, {}
        if method in ("PUT", "POST"):
            fault = str(data.get("fault"))
            if fault not in ("500", "502", "503", "504", "timeout", "429"):
                raise AdminError(400, "fault must be one of 500 502 503 504 timeout 429")
            b = state.behaviours.setdefault(data.get("endpoint", "*"), EndpointBehaviour())
            b.fault = fault
            b.remaining = data.get("count")
            b.retry_after = int(data.get("retry_after", 5))
            return 200, asdict(b)
    if head == "limits":
        lim = app.throttle.limits
        if method in ("PUT", "POST"):
            for k, v in data.items():
                if not hasattr(lim, k):
                    raise AdminError(400, f"unknown limit '{k}'")
                setattr(lim, k, v)
            app.throttle.reset()
        return 200, asdict(lim)
    if head == "rules":
        if method == "GET":
            return 200, [asdict(r) for r in state.rules]
        if method == "POST":
            try:
                rule = parse_rule(state, data)
            except ValueError as e:
                raise AdminError(400, str(e)) from e
            state.rules.append(rule)
            return 201, asdict(rule)
        if method == "DELETE":
            if len(parts) > 1:
                state.rules = [r for r in state.rules if str(r.id) != parts[1]]
            else:
                state.rules = []
            return 200, {}
    if head == "security":
        return security.admin(state, method, parts[1:], data)
    if head == "field-security":
        if method == "GET":
            return 200, {
                "secured": sorted(
                    f"{t.logical_name}.{c.name}"
                    for t in state.tables.values()
                    for c in t.columns.values()
                    if c.secured
                ),
                "permissions": [
                    {"user": u, "table": t, "column": c, **asdict(p)}
                    for (u, t, c), p in state.field_permissions.items()
                ],
            }
        if method in ("PUT", "POST"):
            table = state.tables.get(data.get("table", ""))
            col = table.columns.get(data.get("column", "")) if table else None
            if table is None or col is None:
                raise AdminError(400, "unknown table/column")
            if "secured" in data:
                if data["secured"] and any(col.name in k.columns for k in table.keys):
                    raise AdminError(400, "0x80060896: alternate-key columns can't be secured")
                col.secured = bool(data["secured"])
            for ref, perm in (data.get("permissions") or {}).items():
                state.field_permissions[(_user_id(state, ref), table.logical_name, col.name)] = (
                    FieldPermission(
                        bool(perm.get("read")), bool(perm.get("create")), bool(perm.get("update"))
                    )
                )
            return 200, {"table": table.logical_name, "column": col.name, "secured": col.secured}
    if head == "change-tracking" and method in ("PUT", "POST"):
        if len(parts) > 1 and parts[1] == "age":
            state.ct_clock_offset += state.cfg.world.scale(
                float(data.get("days", 0)) * 86400 + float(data.get("seconds", 0))
            )
            return 200, {"offset_seconds": state.ct_clock_offset}
        table = state.tables.get(data.get("table", ""))
        if table is None:
            raise AdminError(400, "unknown table")
        if "enabled" in data:
            table.change_tracking = bool(data["enabled"])
        if "expire_days" in data:
            state.cfg.expire_change_tracking_in_days = int(data["expire_days"])
        return 200, {"table": table.logical_name, "enabled": table.change_tracking}
    if head == "tokens" and method == "POST":
        user = state.users_by_client.get(data.get("client_id", ""))
        if user is None:
            raise AdminError(404, "unknown client")
        token, life = app.tokens.issue(
            user,
            data.get("audience", ""),
            state.cfg.tenant_id,
            lifetime=int(data.get("expires_in", 3599)),
        )
        return 200, {"access_token": token, "expires_in": life}
    if head == "users" and method == "GET":
        return 200, [
            {"client_id": u.client_id, "systemuserid": u.systemuserid, "fullname": u.fullname}
            for u in state.cfg.users
        ]
    raise AdminError(404, f"no admin route {method} /_emulator/{path}")
