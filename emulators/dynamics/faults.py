"""Seeded faults and mid-run events of the hostile world.

Rates per endpoint decide, per request, whether it is throttled, fails with a 5xx,
hangs then fails or drops, has its change token expire, or — for writes — commits but
loses its answer. Events change the world while the sync runs: every change token
issued so far expires, a validation rule starts rejecting, a column's field-security
grant is taken from the sync user. Each is a knob or an admin call, so a test can
trigger exactly one. The failure this prevents: a sync that assumes an error means
"nothing happened", or that a token, rule or permission seen at start stays true.
"""

from __future__ import annotations

import time
from typing import Any

from emulators.dynamics.errors import DataverseError
from emulators.dynamics.serverlogic import parse_rule
from emulators.dynamics.state import FieldPermission, State
from emulators.dynamics.timing import Dice
from emulators.dynamics.world import LOST_ANSWER_FAULTS, PRE_FAULTS, WorldConfig

_WRITES = ("POST", "PATCH", "PUT", "DELETE")


def _rates(world: WorldConfig, endpoint: str, method: str) -> dict[str, float]:
    merged: dict[str, float] = {}
    if endpoint == "POST token":
        keys = [endpoint]  # the Entra stand-in is not part of the Web API's "*"/"write"
    else:
        keys = ["*", "write", endpoint] if method in _WRITES else ["*", endpoint]
    for key in keys:
        for kind, p in world.fault_rates.get(key, {}).items():
            merged[kind] = float(p)  # the most specific entry wins
    return merged


def choose(world: WorldConfig, dice: Dice, endpoint: str, method: str,
           kinds: tuple[str, ...], applicable: set[str] | None = None) -> str | None:
    """One seeded draw per request: which fault of `kinds` (if any) hits it."""
    rates = _rates(world, endpoint, method)
    if not rates:
        return None
    r = dice.stream(f"faults:{kinds[0]}").random()
    acc = 0.0
    for kind in kinds:
        if applicable is not None and kind not in applicable:
            continue
        acc += rates.get(kind, 0.0)
        if r < acc:
            return kind
    return None


def pre_fault(world: WorldConfig, dice: Dice, endpoint: str, method: str,
              has_delta_token: bool) -> str | None:
    applicable = set(PRE_FAULTS)
    if not has_delta_token:
        applicable.discard("expire-change-token")
    return choose(world, dice, endpoint, method, PRE_FAULTS, applicable)


def lost_answer(world: WorldConfig, dice: Dice, endpoint: str, method: str) -> str | None:
    if method not in _WRITES:
        return None
    return choose(world, dice, endpoint, method, LOST_ANSWER_FAULTS)


def server_error(status: int) -> DataverseError:
    # 500s carry the generic platform code; gateway errors (502/503/504) come from the
    # front end and have no Dataverse code (stated assumption).
    if status == 500:
        return DataverseError(500, "0x80040216", "An unexpected error occurred.")
    text = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
    return DataverseError(status, "", f"{text}.")


# -- events ---------------------------------------------------------------------------

def fire(state: State, event: dict[str, Any]) -> dict[str, Any]:
    """Apply one event now; returns what it did (for the admin log)."""
    kind = event.get("event")
    if kind == "expire-change-tokens":
        state.ct_revoked.update(state.ct_issued)
        return {"event": kind, "tokens": len(state.ct_issued)}
    if kind == "start-rule":
        # Any rule `POST /rules` accepts (reject, or rewrite a value) can start mid-run.
        rule = parse_rule(state, {k: v for k, v in event.items()
                                  if k not in ("event", "at_request", "after_seconds")})
        state.rules.append(rule)
        return {"event": kind, "rule": rule.id, "table": rule.table, "action": rule.action,
                "condition": rule.condition}
    if kind == "revoke-field":
        table = state.tables.get(str(event.get("table", "")))
        col = table.columns.get(str(event.get("column", ""))) if table else None
        if table is None or col is None:
            raise ValueError("revoke-field: unknown table/column")
        if any(col.name in k.columns for k in table.keys):
            raise ValueError("revoke-field: alternate-key columns can't be secured")
        ref = str(event.get("user", "sync-app"))
        user = state.users_by_client.get(ref) or state.users_by_id.get(ref)
        if user is None:
            raise ValueError(f"revoke-field: unknown user '{ref}'")
        if not col.secured:
            # Securing a column takes it from everyone; the others keep what they had.
            for other in state.cfg.users:
                key = (other.systemuserid, table.logical_name, col.name)
                state.field_permissions.setdefault(key, FieldPermission(True, True, True))
            col.secured = True
        state.field_permissions[(user.systemuserid, table.logical_name, col.name)] = \
            FieldPermission(False, False, False)
        return {"event": kind, "table": table.logical_name, "column": col.name,
                "user": user.client_id}
    raise ValueError(f"unknown event {kind!r}")


class Schedule:
    """Fires `WorldConfig.events` when their request count or service time is reached."""

    def __init__(self, world: WorldConfig) -> None:
        self.world = world
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.started = time.monotonic()
        self.done: set[int] = set()
        self.log: list[dict[str, Any]] = []

    def tick(self, state: State) -> None:
        self.requests += 1
        if not self.world.events:
            return
        service_elapsed = (time.monotonic() - self.started) / self.world.time_scale
        for i, ev in enumerate(self.world.events):
            if i in self.done:
                continue
            due = ("at_request" in ev and self.requests >= int(ev["at_request"])) or \
                  ("after_seconds" in ev and service_elapsed >= float(ev["after_seconds"]))
            if due:
                self.done.add(i)
                self.log.append({**fire(state, ev), "at_request": self.requests})
