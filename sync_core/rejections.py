"""Which fields a rejected write was rejected for, so the rest of the record still lands.

Without this, one over-long title would hold back every other change to the record
until someone fixed it. Each vendor says which field it refused in its own words, so
the parsing lives here, once: Dataverse names the column for a length violation
(`0x80044331`: "The length of the 'x' attribute ...") and a secured column on update
(`0x8004F507`: "... Attribute: x"); its picklist error (`0x8004431A`) names none, so the
option-set columns of the write are the candidates. Marketo names the field in
"Field 'x' ..." reasons, or only the value in "Invalid value 'v' ..." (then the field
holding exactly that value). A rejection that names nothing we sent, such as a
plug-in's or business rule's `0x80040265`, returns no field: the whole change stays
rejected, as the record-level rule says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sync_core.errors import RecordRejected
from sync_core.mapping import FieldRule

_QUOTED = re.compile(r"'([^']+)'")
_ATTRIBUTE = re.compile(r"Attribute:\s*([A-Za-z0-9_]+)")
FIELD_CODES = {"0x80044331", "0x8004431A", "0x8004431a", "0x8004F507", "0x8004f507"}
PICKLIST_OUT_OF_RANGE = {"0x8004431A", "0x8004431a"}


def dataverse_columns(
    err: RecordRejected, body: Mapping[str, Any], rules: Iterable[FieldRule]
) -> set[str]:
    """Columns of `body` that Dataverse's error rejected; empty when it names none."""
    if err.code not in FIELD_CODES:
        return set()
    named = set(_ATTRIBUTE.findall(err.message)) | set(_QUOTED.findall(err.message))
    found = {c for c in body if c in named}
    if not found and err.code in PICKLIST_OUT_OF_RANGE:
        picklists = {r.column for r in rules if r.options}
        found = {c for c in body if c in picklists}
    return found


def marketo_fields(reason: Mapping[str, Any], record: Mapping[str, Any]) -> set[str]:
    """Fields of `record` that a Marketo per-record reason names (never the lookup id)."""
    message = str(reason.get("message") or "")
    quoted = _QUOTED.findall(message)
    found = {f for f in record if f in quoted and f != "id"}
    if not found and message.startswith("Invalid value") and quoted:
        holders = [f for f, v in record.items() if f != "id" and str(v) == quoted[0]]
        if len(holders) == 1:
            found = set(holders)
    return found
