"""Record changes that more than one writer makes: a person's name in the log, field updates.

Sync Leads (leads.py) and webhook response mappings (webhooks.py) change a person the
same way: one Change Data Value activity per changed field, `updatedAt` moved only by
standard fields. Both call `update_person` here. It needs only the instance's `Core`,
so the webhooks store uses it without importing the Lead Database endpoints, which
import the `Emulator` that owns the webhooks (the cycle this module removes).
"""

from __future__ import annotations

from typing import Any

from emulators.marketo.activities import CHANGE_DATA_VALUE
from emulators.marketo.core import Core
from emulators.marketo.fields import as_text
from emulators.marketo.store import TOUCHED

SOURCE = "Web service API"


def person_name(person: dict[str, Any]) -> str:
    name = " ".join(p for p in (person.get("firstName"), person.get("lastName")) if p)
    return name or str(person.get("email") or person.get("id"))


def update_person(
    emu: Core,
    lead_id: int,
    changes: dict[str, Any],
    modifier: str | None,
    method: str,
    rid: str,
    reason: str | None = None,
    source: str = SOURCE,
) -> list[str]:
    """Apply already-coerced values; log one Change Data Value per changed field."""
    person = emu.store.people[lead_id]
    now = emu.now()
    now_ms = int(now * 1000)
    changed: list[str] = []
    standard = False
    for name, value in changes.items():
        old = person.get(name)
        if old == value and type(old) is type(value):
            continue
        f = emu.schema.by_name[name]
        emu.store.set_field(lead_id, name, value)
        changed.append(name)
        standard = standard or not f.custom
        new_t, old_t = as_text(value), as_text(old)
        emu.log.add(
            now_ms,
            lead_id,
            CHANGE_DATA_VALUE,
            f.id,
            f.display_name,
            (
                ("Api Method Name", method),
                ("Modifying User", modifier),
                ("New Value", new_t),
                ("Old Value", old_t),
                ("Reason", reason or f"{method} API"),
                ("Request Id", rid),
                ("Source", source),
            ),
            change=(f.id, f.name, new_t, old_t),
        )
    if changed:
        if standard:
            # Marketo's visible updatedAt follows standard fields only (bulk-lead-extract.md).
            person["updatedAt"] = int(now)
            person.pop(TOUCHED, None)
        else:
            person[TOUCHED] = int(now)
    return changed
