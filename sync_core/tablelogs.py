"""The three log tables in Table Storage (blocking; run through tablestore.py): the
cycle log, the error log and the person log, newest first.

What it prevents: a log line that exists twice (error rows are deduped by their
signature row before they are written), a refusal that never reaches the person's
Marketo activity log (the line is kept as owed in the same transaction as the signature,
until it is sent), and a history read that scans a whole table (every query is a key
range).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError

from sync_core import state, tablebatch
from sync_core.state import newest_first
from sync_core.tables import TableRows


class TableLogs:
    def __init__(self, rows: TableRows) -> None:
        self._rows = rows

    def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        self._rows.table("cycles").upsert_entity(state.cycle_row(cycle_id, summary))

    def recent_cycles(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._rows.table("cycles").query_entities(
            "PartitionKey eq 'cycle'", results_per_page=limit
        )
        out = []
        for row in rows:
            out.append(dict(row))
            if len(out) >= limit:
                break
        return out

    def cycles_since(self, since: datetime) -> list[dict[str, Any]]:
        query = "PartitionKey eq 'cycle' and RowKey lt @bound"
        params = {"bound": newest_first(since) + "~"}
        rows = self._rows.table("cycles").query_entities(query, parameters=params)
        return [dict(r) for r in rows]

    def record_errors(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        stamp = state._now()
        entities = []
        added = []
        for n, row in enumerate(rows):
            sig = row.get("signature")
            if sig:
                # One transaction: the dedupe row and the line owed to the activity log
                # exist together or not at all (a crash between them would lose the line).
                seen = {"PartitionKey": state.ERROR_SIG, "RowKey": sig}
                try:
                    tablebatch.submit(
                        self._rows.table("state"),
                        [("create", seen), ("upsert", state.pending_log_row(row, stamp))],
                    )
                except TableTransactionError as exc:
                    if getattr(exc, "error_code", None) != "EntityAlreadyExists":
                        raise
                    continue
            added.append(row)
            entities.append(state.error_row(row, n, stamp))
        self._rows.write("errors", entities)
        return added

    def pending_error_logs(self, limit: int = 300) -> list[dict[str, Any]]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        lo = state.PENDING_LOG
        params = {"pk": state.ERROR_SIG, "lo": lo, "hi": lo[:-1] + chr(ord(lo[-1]) + 1)}
        rows = self._rows.table("state").query_entities(
            query, parameters=params, results_per_page=limit
        )
        out = []
        for row in rows:
            out.append(json.loads(row["row"]))
            if len(out) >= limit:
                break
        return out

    def error_logs_done(self, signatures: Iterable[str]) -> None:
        client = self._rows.table("state")
        for sig in signatures:
            try:
                client.delete_entity(state.ERROR_SIG, state.PENDING_LOG + sig)
            except ResourceNotFoundError:
                pass  # another run sent it and cleared it


    def list_errors(
        self, since: datetime | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query = "PartitionKey eq 'error'"
        params: dict[str, Any] = {}
        if since is not None:
            query += " and RowKey lt @bound"
            params["bound"] = newest_first(since) + "~"
        rows = self._rows.table("errors").query_entities(
            query, parameters=params, results_per_page=limit or 1000
        )
        out = []
        for row in rows:
            out.append(dict(row))
            if limit is not None and len(out) >= limit:
                break
        return out

    def record_person_events(self, events: Iterable[dict[str, Any]]) -> None:
        self._rows.write("personlog", state.person_event_rows(events))

    def person_events(self, marketo_id: int) -> list[dict[str, Any]]:
        pk, lo, hi = state.person_range(marketo_id)
        query = "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi"
        params = {"pk": pk, "lo": lo, "hi": hi}
        rows = self._rows.table("personlog").query_entities(query, parameters=params)
        return [dict(r) for r in rows]
