"""What one engine run did, as it goes: counts, error rows and person-log events.

Every part of a cycle (pairing, linking, merges, deletes, writes) reports into the one
`RunRecord` it is handed, and the record is flushed in one place, in one order: error
rows before anything that relies on them being on record (a link row carrying a
refused-value mark), person events before the cursors move. What it prevents: a part
that keeps its own list and is never flushed, or flushed twice, after a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sync_core.activitylog import (
    SYNC_ERROR,
    already_logged,
    error_entries,
    final,
    send_activities,
)
from sync_core.errors import SyncError
from sync_core.marketo import MarketoClient
from sync_core.state import StateStore

log = logging.getLogger("sync_core")


@dataclass
class Counts:
    to_marketo: int = 0
    to_dynamics: int = 0
    fields_to_marketo: int = 0
    fields_to_dynamics: int = 0
    collisions: int = 0
    rejected: int = 0
    stale: int = 0
    retry_later: int = 0
    linked: int = 0
    created_in_marketo: int = 0
    filtered_out: int = 0
    deleted_in_dynamics: int = 0
    deleted_in_marketo: int = 0
    held: int = 0  # changes the mass-change guard holds back for a release
    merged: int = 0  # merges followed from one system into the other

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(slots=True)
class SyncErrorRow:
    """One row of the error table: a write, create, merge or hold that did not happen."""

    operation: str  # update | create | merge | hold
    direction: str  # to-marketo | to-dynamics
    entity: str
    fields: list[str]
    code: str
    message: str
    marketo_id: int | str = ""  # "" where no person exists (yet)
    dynamics_id: str = ""
    # A refusal's stable name: a run repeating it after a crash records it once.
    signature: str | None = None

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operation": self.operation,
            "direction": self.direction,
            "entity": self.entity,
            "fields": self.fields,
            "code": self.code,
            "message": self.message,
            "marketoId": self.marketo_id,
            "dynamicsId": self.dynamics_id,
        }
        if self.signature is not None:
            out["signature"] = self.signature
        return out


@dataclass(slots=True)
class PersonEvent:
    """One line of a person's history (`explain` reads it): what the sync did for them."""

    marketo_id: int
    entity: str
    dynamics_id: str
    direction: str  # to-marketo | to-dynamics | merge
    fields: list[str]
    note: str | None = None
    # What else the line says: collisions, rules, truncated, merged ids, left-out fields.
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "marketoId": self.marketo_id,
            "entity": self.entity,
            "dynamicsId": self.dynamics_id,
            "direction": self.direction,
            "fields": self.fields,
            **self.details,
        }
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass
class RunRecord:
    counts: Counts = field(default_factory=Counts)
    errors: list[SyncErrorRow] = field(default_factory=list)
    events: list[PersonEvent] = field(default_factory=list)
    owed_read: bool = False  # lines owed by earlier runs were looked up in this run

    def error(self, err: SyncErrorRow) -> None:
        self.errors.append(err)

    def event(self, ev: PersonEvent) -> None:
        self.events.append(ev)

    async def flush_errors(self, store: StateStore, marketo: MarketoClient) -> None:
        """Record the errors gathered so far (error table, then the person's activity
        log). Rows a previous run already recorded (same signature) are skipped. A
        refusal's log line is owed until Marketo took it: one an earlier run could not
        send (Marketo down, the run died first) goes out with this one, once."""
        errors, self.errors = self.errors, []
        new = await store.record_errors([e.row() for e in errors]) if errors else []
        signed = [r for r in new if r.get("signature")]
        rows = [r for r in new if not r.get("signature")]
        if signed or not self.owed_read:
            # One read a run, and one after each new refusal (which is among them):
            # most pages refuse nothing.
            rows = await store.pending_error_logs() + rows
            self.owed_read = True
        loggable = [r for r in rows if error_entries([r])]
        nobody = [r["signature"] for r in rows if r.get("signature") and r not in loggable]
        if nobody:
            await store.error_logs_done(nobody)  # naming no person, it can never be sent
        if not loggable:
            return
        try:
            loggable = await self._not_yet_sent(store, marketo, loggable, signed)
            results = await send_activities(
                marketo, SYNC_ERROR, error_entries(loggable), store=store
            )
        except SyncError as exc:
            # The error table has the row; a missing log line must not fail the cycle
            # (it stays owed and is sent by the next flush).
            log.warning("could not write sync errors to Marketo activity logs: %s", exc)
            return
        if results is None:
            return  # the log is off (the summary says why); the lines stay owed
        done = [
            str(row["signature"])
            for row, result in zip(loggable, results, strict=True)
            if row.get("signature") and final(result)
        ]
        if done:
            await store.error_logs_done(done)

    async def _not_yet_sent(
        self,
        store: StateStore,
        marketo: MarketoClient,
        rows: list[dict[str, Any]],
        new: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Drop the lines owed by an earlier run that its sending did reach Marketo (it
        died before noting so): looked up in the people's logs, so none is sent twice.
        Costs Marketo calls only after such a failure."""
        fresh = {r["signature"] for r in new}
        earlier = [r for r in rows if r.get("signature") and r["signature"] not in fresh]
        if not earlier:
            return rows
        since = min(datetime.fromisoformat(str(r["at"])) for r in earlier) - timedelta(minutes=1)
        there = await already_logged(marketo, error_entries(earlier), since, store)
        sent = {str(r["signature"]) for r, yes in zip(earlier, there, strict=True) if yes}
        if sent:
            await store.error_logs_done(sent)
        return [r for r in rows if r.get("signature") not in sent]

    async def flush(self, store: StateStore, marketo: MarketoClient) -> None:
        """Errors first, then the person log."""
        await self.flush_errors(store, marketo)
        if self.events:
            # Cleared only once written: a failed write is tried again by the next flush.
            await store.record_person_events([e.row() for e in self.events])
            self.events = []
