"""In-memory rows with the indexes and change log Dataverse semantics need.

Rows are plain dicts holding only the columns that were set (no None padding) and
timestamps as epoch ints, so one million rows fit well inside 3 GB. Indexes on alternate
keys and lower-cased email keep key lookups and `emailaddress1 eq` filters O(1), and a
modification-ordered map plus a compact delete log make delta queries cheap. A journal
lets a $batch change set roll back atomically (the failure it prevents: half-applied
change sets that real Dataverse never leaves behind).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from emulators.dynamics.schema import Table

Row = dict[str, Any]


class TableStore:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.rows: dict[str, Row] = {}
        # id -> versionnumber, iteration order == modification order (pop + reinsert).
        self.changed: dict[str, int] = {}
        # (version, id, epoch seconds) of deletes, ascending version.
        self.deleted: list[tuple[int, str, int]] = []
        self.key_index: dict[str, dict[tuple[Any, ...], str]] = {k.name: {} for k in table.keys}
        self.email_index: dict[str, Any] = {}
        self._sorted: list[str] = []
        self._pending: set[str] = set()
        self._removed: set[str] = set()

    # -- ordering by primary key (default Dataverse order) ------------------------------
    def sorted_ids(self) -> list[str]:
        if self._removed:
            self._sorted = [i for i in self._sorted if i not in self._removed]
            self._removed.clear()
        if self._pending:
            if len(self._pending) < 2000:
                for i in self._pending:
                    bisect.insort(self._sorted, i)
            else:
                self._sorted.extend(self._pending)
                self._sorted.sort()
            self._pending.clear()
        return self._sorted

    # -- index maintenance --------------------------------------------------------------
    def key_tuple(self, key_name: str, row: Row) -> tuple[Any, ...] | None:
        key = self.table.key_named(key_name)
        assert key is not None
        vals = tuple(_norm(row.get(c)) for c in key.columns)
        return None if any(v is None for v in vals) else vals

    def _index(self, rid: str, row: Row, add: bool) -> None:
        for k in self.table.keys:
            kt = self.key_tuple(k.name, row)
            if kt is None:
                continue
            idx = self.key_index[k.name]
            if add:
                idx[kt] = rid
            elif idx.get(kt) == rid:
                del idx[kt]
        email = row.get("emailaddress1")
        if isinstance(email, str):
            e = email.lower()
            cur = self.email_index.get(e)
            if add:
                if cur is None:
                    self.email_index[e] = rid
                elif isinstance(cur, set):
                    cur.add(rid)
                elif cur != rid:
                    self.email_index[e] = {cur, rid}
            elif cur is not None:
                if isinstance(cur, set):
                    cur.discard(rid)
                    if len(cur) == 1:
                        self.email_index[e] = next(iter(cur))
                elif cur == rid:
                    del self.email_index[e]

    def ids_by_email(self, email: str) -> list[str]:
        cur = self.email_index.get(email.lower())
        if cur is None:
            return []
        return sorted(cur) if isinstance(cur, set) else [cur]

    # -- mutations (journaled) ----------------------------------------------------------
    def put(self, rid: str, row: Row, journal: list[Any] | None) -> None:
        old = self.rows.get(rid)
        if journal is not None:
            journal.append((self, rid, old, self.changed.get(rid), len(self.deleted)))
        if old is not None:
            self._index(rid, old, add=False)
        else:
            self._pending.add(rid)
            self._removed.discard(rid)
        self.rows[rid] = row
        self._index(rid, row, add=True)
        self.changed.pop(rid, None)
        self.changed[rid] = row["versionnumber"]

    def remove(self, rid: str, version: int, now: int, journal: list[Any] | None) -> None:
        old = self.rows.pop(rid)
        if journal is not None:
            journal.append((self, rid, old, self.changed.get(rid), len(self.deleted)))
        self._index(rid, old, add=False)
        self.changed.pop(rid, None)
        if rid in self._pending:
            self._pending.discard(rid)
        else:
            self._removed.add(rid)
        if self.table.change_tracking:
            self.deleted.append((version, rid, now))

    def undo(self, rid: str, old: Row | None, old_version: int | None, n_deleted: int) -> None:
        cur = self.rows.pop(rid, None)
        if cur is not None:
            self._index(rid, cur, add=False)
            self._pending.discard(rid)
            self._removed.add(rid)
        self.changed.pop(rid, None)
        del self.deleted[n_deleted:]
        if old is not None:
            self.rows[rid] = old
            self._index(rid, old, add=True)
            self._removed.discard(rid)
            self._pending.add(rid)
            if old_version is not None:
                self.changed[rid] = old_version

    # -- change tracking ----------------------------------------------------------------
    def changes_between(self, low: int, high: int) -> list[str]:
        """Ids whose current version is in (low, high], ascending version."""
        out: list[str] = []
        for rid in reversed(self.changed):
            v = self.changed[rid]
            if v <= low:
                break
            if v <= high:
                out.append(rid)
        out.reverse()
        return out

    def deletes_between(self, low: int, high: int) -> Iterator[tuple[int, str, int]]:
        i = bisect.bisect_right(self.deleted, (low, "\uffff", 0))
        for entry in self.deleted[i:]:
            if entry[0] > high:
                break
            yield entry


def _norm(v: Any) -> Any:
    # Dataverse compares string key values case-insensitively (SQL collation).
    return v.lower() if isinstance(v, str) else v


def rollback(journal: list[Any]) -> None:
    touched: dict[int, TableStore] = {}
    for store, rid, old, old_version, n_deleted in reversed(journal):
        store.undo(rid, old, old_version, n_deleted)
        touched[id(store)] = store
    # Undo re-inserts rows at the end of the modification order; restore version order so
    # delta queries (which stop at the first old version) stay correct. Rollbacks are rare.
    for store in touched.values():
        store.changed = dict(sorted(store.changed.items(), key=lambda kv: kv[1]))
    journal.clear()
