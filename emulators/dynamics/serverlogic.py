"""Business rules and synchronous plug-in steps: reject, rewrite a value, follow-on update.

Dataverse runs server-side logic the client never sees until it acts: a business rule or
pre-operation plug-in can reject a write (400 `0x80040265`, the author's message) or change
a value before it is stored (so the row read back differs from what was written), and a
post-operation step can update the row again, a second version that change tracking
reports. The failure this prevents: a sync that assumes what it wrote is what is stored,
and that echoes its own writes (or loops) when the platform adds a change of its own.

A rule is `{"table", "on": ["create","update"], "condition": <OData filter on the
post-image, optional>, "action": reject|set|upper|lower|increment, "column", "value",
"stage": pre|post, "when_changed": [columns], "run_as": user}`. Pre-stage rules run in
order inside the write; post-stage rules each make one follow-on update.
"""

from __future__ import annotations

from typing import Any

from emulators.dynamics.config import UserConfig
from emulators.dynamics.errors import DataverseError
from emulators.dynamics.odata_filter import compile_filter
from emulators.dynamics.schema import Table
from emulators.dynamics.state import Rule, State

ACTIONS = ("reject", "set", "upper", "lower", "increment")
# Dataverse stops a chain of synchronous plug-ins deeper than this (dataverse.md §6).
MAX_DEPTH = 8


def parse_rule(state: State, data: dict[str, Any]) -> Rule:
    """Validate an admin/config rule; raises ValueError with the reason."""
    table = state.tables.get(str(data.get("table", "")))
    if table is None:
        raise ValueError("unknown table")
    action = str(data.get("action", "reject"))
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    stage = str(data.get("stage", "pre"))
    if stage not in ("pre", "post"):
        raise ValueError("stage must be pre or post")
    condition = data.get("condition")
    if action == "reject" and not condition:
        raise ValueError("a reject rule needs a condition")
    if condition:
        try:
            compile_filter(table, condition)
        except DataverseError as e:
            raise ValueError(f"bad condition: {e.message}") from e
    column = data.get("column")
    if action != "reject":
        col = table.columns.get(str(column))
        if col is None or col.is_lookup:
            raise ValueError(f"unknown column {column!r}")
        if action in ("upper", "lower") and col.type not in ("String", "Memo"):
            raise ValueError(f"{action} needs a text column")
        if action == "increment" and col.type not in ("Integer", "BigInt"):
            raise ValueError("increment needs an Integer column")
    for name in data.get("when_changed") or ():
        if name not in table.columns:
            raise ValueError(f"unknown column {name!r} in when_changed")
    run_as = data.get("run_as")
    if run_as is not None and run_as not in state.users_by_client \
            and run_as not in state.users_by_id:
        raise ValueError(f"unknown user {run_as!r}")
    rule = Rule(state.next_rule_id, table.logical_name, condition,
                str(data.get("message") or "Rejected by a business rule."),
                tuple(data.get("on") or ("create", "update")), action,
                str(column) if column else None, data.get("value"), stage,
                tuple(data.get("when_changed") or ()), run_as)
    state.next_rule_id += 1
    return rule


def load_rules(state: State) -> None:
    """Install the configured rules (after a reset)."""
    for rc in state.cfg.server_rules:
        state.rules.append(parse_rule(state, {
            "table": rc.table, "action": rc.action, "on": rc.on, "condition": rc.condition,
            "message": rc.message, "column": rc.column, "value": rc.value,
            "stage": rc.stage, "when_changed": rc.when_changed, "run_as": rc.run_as}))


def _applies(rule: Rule, table: Table, post: dict[str, Any], changes: dict[str, Any],
             op: str) -> bool:
    if rule.table != table.logical_name or op not in rule.on:
        return False
    if rule.when_changed and not any(c in changes for c in rule.when_changed):
        return False
    if rule.condition:
        pred, _ = compile_filter(table, rule.condition)
        return pred(post) is True
    return True


def _new_value(rule: Rule, current: Any) -> Any:
    if rule.action == "set":
        return rule.value
    if rule.action == "upper":
        return current.upper() if isinstance(current, str) else current
    if rule.action == "lower":
        return current.lower() if isinstance(current, str) else current
    return (current or 0) + int(rule.value or 1)  # increment


def pre_operation(state: State, table: Table, post: dict[str, Any],
                  changes: dict[str, Any], op: str) -> None:
    """Pre-stage rules, in order: reject (400 IsvAborted) or rewrite `post` in place."""
    for rule in state.rules:
        if rule.stage != "pre" or not _applies(rule, table, post, changes, op):
            continue
        if rule.action == "reject":
            raise DataverseError(400, "0x80040265", rule.message)
        value = _new_value(rule, post.get(str(rule.column)))
        if value is None:
            post.pop(str(rule.column), None)
        else:
            post[str(rule.column)] = value


def has_post_steps(state: State, table: Table) -> bool:
    return any(r.stage == "post" and r.table == table.logical_name for r in state.rules)


def follow_ups(state: State, table: Table, post: dict[str, Any], changes: dict[str, Any],
               op: str, user: UserConfig) -> list[tuple[UserConfig, dict[str, Any]]]:
    """Post-stage steps that fire for this write: (run-as user, changes to apply)."""
    out: list[tuple[UserConfig, dict[str, Any]]] = []
    for rule in state.rules:
        if rule.stage != "post" or not _applies(rule, table, post, changes, op):
            continue
        if rule.action == "reject":
            raise DataverseError(400, "0x80040265", rule.message)
        if state.plugin_depth >= MAX_DEPTH:
            # Assumption: the loop guard surfaces like any plug-in failure (see README).
            raise DataverseError(400, "0x80040265",
                                 "This plug-in chain was stopped because it exceeded the "
                                 f"maximum depth of {MAX_DEPTH} (infinite loop).")
        value = _new_value(rule, post.get(str(rule.column)))
        if post.get(str(rule.column)) == value:
            continue  # nothing to change: no extra version
        runner = user
        if rule.run_as:
            runner = state.users_by_client.get(rule.run_as) or state.users_by_id[rule.run_as]
        out.append((runner, {str(rule.column): value}))
    return out
