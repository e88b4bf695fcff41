"""The three log tables in Table Storage (blocking; run through tablestore.py): the
cycle log, the error log and the person log, newest first.

What it prevents: a log line that exists twice (error rows are deduped by their
signature row before they are written) and a history read that scans a whole table
(every query is a key range).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError

from sync_core import state
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
                try:
                    seen = {"PartitionKey": "errorsig", "RowKey": sig}
                    self._rows.table("state").create_entity(seen)
                except ResourceExistsError:
                    continue
            added.append(row)
            entities.append(state.error_row(row, n, stamp))
        self._rows.write("errors", entities)
        return added

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
