"""Append-only activity log, standard activity types and paging tokens.

Activities are tuples in recording order. With `paging_tokens = "position"` (the
`exact` profile) a paging token is a position in the log (base32 like Marketo's) and a
`sinceDatetime` maps to a position by bisecting the recording times. With `"date"`
(paging-tokens.md: activity tokens are date-based) a token is a point in activity time
plus an id tie-break, read against a lazily built (activityDate, id) index; an
activity that commits late (`visible_ms`) is invisible until then, so a token moved
past its date skips it, the pitfall of the KB article "REST API Paging Tokens Use
Case". Feeds scan a bounded block per call, which is why a page can hold fewer than
batchSize items - even none - while `moreResult` is true; clients that stop on a
short page instead of `moreResult` are caught by this.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from emulators.marketo.fields import iso


class Activity(NamedTuple):
    """One activity. `attrs` holds (name, value) or (name, value, apiName) tuples."""

    id: int
    logged_ms: int  # recording time: orders the log and drives paging tokens
    lead_id: int
    type_id: int
    primary_id: int | None
    primary_value: Any
    attrs: tuple[tuple[Any, ...], ...]
    #: Change Data Value only: (field id, field REST name, new value, old value).
    change: tuple[int, str, str | None, str | None] | None = None
    #: Caller-supplied activityDate (custom activities); else the recording time.
    activity_date: str | None = None
    #: activityDate in epoch ms: the order of date-based paging.
    date_ms: int = 0
    #: Commit time in epoch ms: the feeds do not see the activity before it (0 = at once).
    visible_ms: int = 0


NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
MERGE_LEADS = 32
DELETE_LEAD = 37
CALL_WEBHOOK = 110

_S, _I, _T = "string", "integer", "text"
# id: (name, description, primary (name, type), [(attr, type)])
STANDARD_TYPES: dict[int, tuple[str, str, tuple[str, str] | None, list[tuple[str, str]]]] = {
    1: ("Visit Webpage", "User visits a web page", ("Webpage ID", _I),
        [("Client IP Address", _S), ("Query Parameters", _S), ("Referrer URL", _S),
         ("User Agent", _S), ("Webpage URL", _S)]),
    2: ("Fill Out Form", "User fills out and submits form on web page", ("Webform ID", _I),
        [("Client IP Address", _S), ("Form Fields", _T), ("Query Parameters", _S),
         ("Referrer URL", _S), ("User Agent", _S), ("Webpage ID", _I)]),
    3: ("Click Link", "User clicks on a link on a web page", ("Link ID", _I),
        [("Client IP Address", _S), ("Query Parameters", _S), ("Referrer URL", _S),
         ("User Agent", _S), ("Webpage URL", _S)]),
    6: ("Send Email", "Send Marketo Email to a person", ("Mailing ID", _I),
        [("Campaign Run ID", _I), ("Step ID", _I)]),
    7: ("Email Delivered", "Marketo Email is delivered to a person", ("Mailing ID", _I),
        [("Campaign Run ID", _I), ("Step ID", _I)]),
    8: ("Email Bounced", "Marketo Email is bounced for a person", ("Mailing ID", _I),
        [("Category", _S), ("Details", _S), ("Email", _S), ("Subcategory", _S)]),
    9: ("Unsubscribe Email", "Person unsubscribed from Marketo Emails", ("Mailing ID", _I),
        [("Client IP Address", _S), ("Form Fields", _T), ("User Agent", _S)]),
    10: ("Open Email", "User opens Marketo Email", ("Mailing ID", _I),
         [("Device", _S), ("Is Mobile Device", "boolean"), ("Platform", _S), ("User Agent", _S)]),
    11: ("Click Email", "User clicks on a link in a Marketo Email", ("Mailing ID", _I),
         [("Device", _S), ("Link", _S), ("Platform", _S), ("User Agent", _S)]),
    12: ("New Lead", "New person", None,
         [("Api Method Name", _S), ("Created Date", "date"), ("Modifying User", _S),
          ("Request Id", _S), ("Source Type", _S), ("Form Name", _S), ("List Name", _S)]),
    13: ("Change Data Value", "Changed attribute value for a person", ("Attribute Name", _S),
         [("Api Method Name", _S), ("Modifying User", _S), ("New Value", _S),
          ("Old Value", _S), ("Reason", _S), ("Request Id", _S), ("Source", _S)]),
    21: ("Convert Lead", "Convert a person", None, [("Assign To", _S)]),
    22: ("Change Score", "Change a person's score", ("Score Name", _S),
         [("Change Value", _S), ("New Value", _I), ("Old Value", _I), ("Reason", _S)]),
    23: ("Change Owner", "Change the owner of a person", None, [("New Owner", _S)]),
    24: ("Add to List", "Add a person to a list", ("List ID", _I), [("Source", _S)]),
    25: ("Remove from List", "Remove a person from a list", ("List ID", _I), [("Source", _S)]),
    32: ("Merge Leads", "Merge two or more people", ("Lead ID", _I),
         [("Master Updated", "boolean"), ("Merge IDs", _S), ("Merge Source", _S),
          ("Merged in Sales", "boolean"), ("Merge Fields", _T), ("Modifying User", _S)]),
    37: ("Delete Lead", "Delete a person", ("Lead ID", _I),
         [("Api Method Name", _S), ("Modifying User", _S), ("Remove from CRM", "boolean")]),
    46: ("Interesting Moment", "Interesting moment", ("Marketo Asset Name", _S),
         [("Description", _S), ("Source", _S)]),
    100: ("Change Lead Partition", "Change a person's partition", None,
          [("New Partition ID", _I), ("Old Partition ID", _I), ("Reason", _S)]),
    110: ("Call Webhook", "Call a webhook", ("Webhook ID", _I),
          [("Error Type", _I), ("Response", _T), ("Response Code", _I)]),
    145: ("Push Lead to Marketo", "Push a person to Marketo", ("Program ID", _I),
          [("Reason", _S), ("Source", _S)]),
    300: ("Sync Lead to Microsoft", "Sync a person to Microsoft Dynamics", None,
          [("Assign To", _S), ("Sync As", _S)]),
}


def standard_types() -> list[dict[str, Any]]:
    out = []
    for tid, (name, desc, primary, attrs) in STANDARD_TYPES.items():
        item: dict[str, Any] = {"id": tid, "name": name, "description": desc}
        # Swagger marks primaryAttribute required; types without one get a Lead ID primary.
        pname, ptype = primary or ("Lead ID", "integer")
        item["primaryAttribute"] = {"name": pname, "dataType": ptype}
        item["attributes"] = [{"name": n, "dataType": t} for n, t in attrs]
        out.append(item)
    return out


# -- paging tokens ---------------------------------------------------------------
def encode_token(kind: str, position: int | str) -> str:
    raw = f"{kind}:{position}".encode()
    return base64.b32encode(raw).decode().rstrip("=")


def encode_date_token(date_ms: int, act_id: int) -> str:
    return encode_token("D", f"{date_ms}:{act_id}")


def decode_date_token(token: str) -> tuple[int, int] | None:
    """(date_ms, activity id) of a date token; None when it is not one."""
    try:
        pad = "=" * (-len(token) % 8)
        kind, ms, act_id = base64.b32decode(token.upper() + pad).decode().split(":")
        if kind != "D":
            return None
        return int(ms), int(act_id)
    except (ValueError, UnicodeDecodeError):
        return None


def decode_token(token: str, kind: str) -> int | None:
    try:
        pad = "=" * (-len(token) % 8)
        raw = base64.b32decode(token.upper() + pad).decode()
        k, pos = raw.split(":", 1)
        if k != kind:
            return None
        value = int(pos)
        return value if value >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class ActivityLog:
    """All activities, in recording order, with a per-person index."""

    items: list[Activity] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    by_lead: dict[int, list[int]] = field(default_factory=dict)
    last_ms: int = 0
    #: (date_ms, id) of every activity, sorted; built on first date-based read.
    date_keys: list[tuple[int, int]] | None = None
    #: Decides the commit time of a new activity (the world's late commits); None = at once.
    visibility: Callable[[int], int] | None = None

    def add(
        self,
        now_ms: int,
        lead_id: int,
        type_id: int,
        primary_id: int | None = None,
        primary_value: Any = None,
        attrs: Iterable[tuple[Any, ...]] = (),
        change: tuple[int, str, str | None, str | None] | None = None,
        activity_date: str | None = None,
        activity_ms: int | None = None,
        visible_ms: int | None = None,
    ) -> Activity:
        # The log must be monotone for bisecting; a clock step back reuses the last time.
        now_ms = max(now_ms, self.last_ms)
        self.last_ms = now_ms
        if visible_ms is None:
            visible_ms = self.visibility(now_ms) if self.visibility else 0
        act = Activity(
            len(self.items) + 1,
            now_ms,
            lead_id,
            type_id,
            primary_id,
            primary_value,
            tuple(a for a in attrs if a[1] is not None and a[1] != ""),
            change,
            activity_date,
            now_ms if activity_ms is None else activity_ms,
            visible_ms,
        )
        self.items.append(act)
        self.times.append(now_ms)
        self.by_lead.setdefault(lead_id, []).append(act.id)
        if self.date_keys is not None:
            bisect.insort(self.date_keys, (act.date_ms, act.id))
        return act

    def date_index(self) -> list[tuple[int, int]]:
        if self.date_keys is None:
            self.date_keys = sorted((a.date_ms, a.id) for a in self.items)
        return self.date_keys

    def position_for(self, since_ms: int) -> int:
        """First log position recorded at or after `since_ms`."""
        return bisect.bisect_left(self.times, since_ms)

    def for_lead(self, lead_id: int) -> list[Activity]:
        return [self.items[i - 1] for i in self.by_lead.get(lead_id, [])]


def render_activity(act: Activity, with_change_fields: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": act.id,
        "marketoGUID": str(act.id),
        "leadId": act.lead_id,
        "activityDate": act.activity_date or iso(act.logged_ms / 1000),
        "activityTypeId": act.type_id,
    }
    if not with_change_fields:
        if act.primary_id is not None:
            item["primaryAttributeValueId"] = act.primary_id
        if act.primary_value is not None:
            item["primaryAttributeValue"] = act.primary_value
    else:
        if act.change is not None:
            fid, name, new, old = act.change
            change: dict[str, Any] = {"id": fid, "name": name, "newValue": new}
            if old is not None:
                change["oldValue"] = old
            item["fields"] = [change]
        else:
            item["fields"] = []
    attrs = []
    for a in act.attrs:
        if with_change_fields and a[0] in ("New Value", "Old Value"):
            continue  # leadchanges carries these in `fields`
        entry = {"name": a[0], "value": a[1]}
        if len(a) > 2:
            entry["apiName"] = a[2]
        attrs.append(entry)
    item["attributes"] = attrs
    return item
