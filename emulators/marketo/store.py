"""Compact in-memory person store with a lowercased email index.

A million people must fit in well under 3 GB, so each person is a plain dict holding
only the fields that are set (nulls are simply absent, which is also how reads omit
them), timestamps are epoch ints and field-name keys are shared interned strings.
Lookups by email are case-insensitive because Marketo's are; duplicates are allowed
(createDuplicate) so an index slot holds an int or a list of ints.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

#: Internal key: the last time any field (custom included) changed. Marketo's visible
#: `updatedAt` tracks standard fields only; the bulk `updatedAt` filter uses this.
TOUCHED = "\x00touched"

Index = dict[Any, "int | list[int]"]


def _add(index: Index, key: Any, lead_id: int) -> None:
    cur = index.get(key)
    if cur is None:
        index[key] = lead_id
    elif isinstance(cur, list):
        cur.append(lead_id)
    elif cur != lead_id:
        index[key] = [cur, lead_id]


def _remove(index: Index, key: Any, lead_id: int) -> None:
    cur = index.get(key)
    if cur is None:
        return
    if isinstance(cur, list):
        if lead_id in cur:
            cur.remove(lead_id)
        if len(cur) == 1:
            index[key] = cur[0]
        elif not cur:
            del index[key]
    elif cur == lead_id:
        del index[key]


def _ids(slot: int | list[int] | None) -> list[int]:
    if slot is None:
        return []
    return list(slot) if isinstance(slot, list) else [slot]


def _norm(field: str, value: Any) -> Any:
    return value.lower() if isinstance(value, str) and field == "email" else value


class LeadStore:
    """People by id plus value indexes for the searchable fields."""

    def __init__(self) -> None:
        self.people: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        #: email (lowercased) → id(s); always maintained.
        self.email_index: Index = {}
        #: Other searchable fields, built on first query and then kept up to date.
        self.indexes: dict[str, Index] = {}

    def __len__(self) -> int:
        return len(self.people)

    def get(self, lead_id: int) -> dict[str, Any] | None:
        return self.people.get(lead_id)

    def _index_for(self, field: str) -> Index:
        if field == "email":
            return self.email_index
        idx = self.indexes.get(field)
        if idx is None:
            idx = {}
            for lead_id, person in self.people.items():
                v = person.get(field)
                if v is not None:
                    _add(idx, v, lead_id)
            self.indexes[field] = idx
        return idx

    def find(self, field: str, value: Any) -> list[int]:
        """Ids whose `field` equals `value` (email case-insensitively), ascending."""
        if field == "id":
            try:
                lead_id = int(value)
            except (TypeError, ValueError):
                return []
            return [lead_id] if lead_id in self.people else []
        return sorted(_ids(self._index_for(field).get(_norm(field, value))))

    def insert(self, values: dict[str, Any], now: int) -> int:
        lead_id = self.next_id
        self.next_id += 1
        person = {sys.intern(k): v for k, v in values.items() if v is not None}
        person["id"] = lead_id
        person["createdAt"] = now
        person["updatedAt"] = now
        self.people[lead_id] = person
        self._index_add(lead_id, person)
        return lead_id

    def _index_add(self, lead_id: int, person: dict[str, Any]) -> None:
        email = person.get("email")
        if email is not None:
            _add(self.email_index, email.lower(), lead_id)
        for field, idx in self.indexes.items():
            v = person.get(field)
            if v is not None:
                _add(idx, v, lead_id)

    def set_field(self, lead_id: int, field: str, value: Any) -> None:
        """Change one field and keep indexes consistent (None deletes the value)."""
        person = self.people[lead_id]
        old = person.get(field)
        if field == "email" or field in self.indexes:
            idx = self._index_for(field)
            if old is not None:
                _remove(idx, _norm(field, old), lead_id)
            if value is not None:
                _add(idx, _norm(field, value), lead_id)
        if value is None:
            person.pop(field, None)
        else:
            person[sys.intern(field)] = value

    def delete(self, lead_id: int) -> dict[str, Any] | None:
        person = self.people.pop(lead_id, None)
        if person is None:
            return None
        email = person.get("email")
        if email is not None:
            _remove(self.email_index, email.lower(), lead_id)
        for field, idx in self.indexes.items():
            v = person.get(field)
            if v is not None:
                _remove(idx, v, lead_id)
        return person

    def iter_people(self) -> Iterator[dict[str, Any]]:
        return iter(self.people.values())

    def bulk_load(self, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
        """Insert pre-built rows (seeding) without per-row activity; returns id range."""
        first = self.next_id
        for row in rows:
            lead_id = self.next_id
            self.next_id += 1
            row["id"] = lead_id
            self.people[lead_id] = row
            self._index_add(lead_id, row)
        return first, self.next_id - 1
