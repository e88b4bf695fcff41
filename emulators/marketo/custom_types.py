"""Custom activity types: each type's approved version and draft, by API name and by id.

The store the custom-activity endpoints (custom_activities.py) work on. It reads the
instance as a `Core`, so the `Emulator` that owns it can import it without importing
the endpoints back.
"""

from __future__ import annotations

import copy
from typing import Any

from emulators.marketo.core import Core
from emulators.marketo.envelope import ApiError
from emulators.marketo.fields import iso

#: Ids of custom types start here, clear of the standard activity type ids.
FIRST_CUSTOM_TYPE_ID = 100001


class CustomTypes:
    def __init__(self, emu: Core) -> None:
        self.emu = emu
        self.types: dict[str, dict[str, Any]] = {}
        self.by_id: dict[int, dict[str, Any]] = {}
        self.next_id = FIRST_CUSTOM_TYPE_ID

    # -- views ---------------------------------------------------------------------
    @staticmethod
    def status(t: dict[str, Any]) -> str:
        if t["deleted"]:
            return "deleted"
        if t["approved"] is None:
            return "draft"
        return "approved with draft" if t["draft"] is not None else "approved"

    def view(self, t: dict[str, Any], draft: bool = False) -> dict[str, Any]:
        ver = (t["draft"] or t["approved"]) if draft else (t["approved"] or t["draft"])
        out: dict[str, Any] = {"id": t["id"], "apiName": t["apiName"], **copy.deepcopy(ver)}
        out["status"] = self.status(t)
        out["createdAt"] = iso(t["createdAt"])
        out["updatedAt"] = iso(t["updatedAt"])
        return out

    def as_activity_types(self) -> list[dict[str, Any]]:
        out = []
        for t in self.types.values():
            ver = t["approved"]
            if ver is None or t["deleted"]:
                continue
            p = ver["primaryAttribute"]
            out.append(
                {
                    "id": t["id"],
                    "apiName": t["apiName"],
                    "name": ver["name"],
                    "description": ver.get("description", ""),
                    "primaryAttribute": {
                        "apiName": p["apiName"],
                        "name": p["name"],
                        "dataType": p.get("dataType", "string"),
                    },
                    "attributes": [
                        {
                            "apiName": a["apiName"],
                            "name": a["name"],
                            "dataType": a.get("dataType", "string"),
                        }
                        for a in ver["attributes"]
                    ],
                }
            )
        return out

    def get(self, api_name: str) -> dict[str, Any]:
        t = self.types.get(api_name)
        if t is None or t["deleted"]:
            raise ApiError("1013", f"Activity type '{api_name}' not found")
        return t

    def editable(self, t: dict[str, Any]) -> dict[str, Any]:
        """The draft to edit, started from the approved version when there is none."""
        if t["draft"] is None:
            t["draft"] = copy.deepcopy(t["approved"])
        t["updatedAt"] = self.emu.now()
        draft: dict[str, Any] = t["draft"]
        return draft
