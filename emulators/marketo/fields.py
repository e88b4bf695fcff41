"""The person (lead) schema: field definitions, value coercion and describe payloads.

One table drives describe/describe2, the searchable filterTypes, type checks on
writes (1001) and unknown-field rejection (1006), so the three can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

#: Marker returned by `coerce` when a value does not fit the field type (→ 1001).
INVALID = object()


@dataclass(frozen=True)
class FieldDef:
    """One person field. `name` is the REST API name; `soap_name` the SOAP one."""

    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    updateable: bool = True
    crm_managed: bool = False
    searchable: bool = False
    custom: bool = False
    soap_name: str = ""

    @property
    def soap(self) -> str:
        if self.soap_name or self.custom:
            return self.soap_name or self.name
        return self.name[:1].upper() + self.name[1:]


_S = "string"
# (rest name, display name, type, length, updateable, searchable, soap name override)
_STANDARD: list[tuple[str, str, str, int | None, bool, bool, str]] = [
    ("id", "Id", "integer", None, False, True, "Id"),
    ("email", "Email Address", "email", 255, True, True, "Email"),
    ("salutation", "Salutation", _S, 255, True, False, ""),
    ("firstName", "First Name", _S, 255, True, False, ""),
    ("middleName", "Middle Name", _S, 255, True, False, ""),
    ("lastName", "Last Name", _S, 255, True, False, ""),
    ("title", "Job Title", _S, 255, True, False, ""),
    ("phone", "Phone Number", "phone", 255, True, False, ""),
    ("mobilePhone", "Mobile Phone Number", "phone", 255, True, False, ""),
    ("fax", "Fax Number", "phone", 255, True, False, ""),
    ("dateOfBirth", "Date of Birth", "date", None, True, False, ""),
    ("address", "Address", "text", 65535, True, False, ""),
    ("city", "City", _S, 255, True, False, ""),
    ("state", "State", _S, 255, True, False, ""),
    ("postalCode", "Postal Code", _S, 255, True, False, ""),
    ("country", "Country", _S, 255, True, False, ""),
    ("company", "Company Name", _S, 255, True, False, ""),
    ("site", "Site", _S, 255, True, False, ""),
    ("department", "Department", _S, 255, True, False, ""),
    ("website", "Website", "url", 255, True, False, ""),
    ("industry", "Industry", _S, 255, True, False, ""),
    ("numberOfEmployees", "Num Employees", "integer", None, True, False, ""),
    ("annualRevenue", "Annual Revenue", "currency", None, True, False, ""),
    ("leadSource", "Person Source", _S, 255, True, False, ""),
    ("leadStatus", "Person Status", _S, 255, True, False, ""),
    ("rating", "Person Rating", _S, 255, True, False, ""),
    ("leadScore", "Person Score", "integer", None, True, False, ""),
    ("unsubscribed", "Unsubscribed", "boolean", None, True, False, ""),
    ("unsubscribedReason", "Unsubscribed Reason", "text", 65535, True, False, ""),
    ("doNotCall", "Do Not Call", "boolean", None, True, False, ""),
    ("doNotCallReason", "Do Not Call Reason", _S, 255, True, False, ""),
    ("emailInvalid", "Email Invalid", "boolean", None, True, False, ""),
    ("emailInvalidCause", "Email Invalid Cause", _S, 255, True, False, ""),
    ("leadPartitionId", "Lead Partition Id", "integer", None, False, True, ""),
    ("createdAt", "Created At", "datetime", None, False, False, ""),
    ("updatedAt", "Updated At", "datetime", None, False, False, ""),
]

#: Custom fields the sync needs on the person (Part 1 §1.12 "Microsoft Type" etc.).
_CUSTOM: list[tuple[str, str, str, int | None, bool, bool, str]] = [
    ("dynamicsId", "Dynamics Id", _S, 36, True, True, ""),
    ("dynamicsType", "Dynamics Type", _S, 255, True, True, ""),
    ("dynamicsDeleted", "Dynamics Deleted", "boolean", None, True, False, ""),
]

#: Fields returned by Get Leads when `fields` is omitted (leads.md).
DEFAULT_READ_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")
#: Stored as epoch seconds (ints) to keep a million people small; rendered as ISO 8601.
EPOCH_FIELDS = frozenset({"createdAt", "updatedAt"})


def default_fields() -> list[FieldDef]:
    out: list[FieldDef] = []
    for i, (name, disp, typ, length, upd, search, soap) in enumerate(_STANDARD, start=1):
        out.append(FieldDef(i, name, disp, typ, length, upd, False, search, False, soap))
    for i, (name, disp, typ, length, upd, search, soap) in enumerate(_CUSTOM, start=1001):
        out.append(FieldDef(i, name, disp, typ, length, upd, False, search, True, soap))
    return out


class Schema:
    """Lookup tables over the field list; custom fields may be added at run time."""

    def __init__(self, defs: list[FieldDef] | None = None) -> None:
        self.fields: list[FieldDef] = []
        self.by_name: dict[str, FieldDef] = {}
        self._lower: dict[str, FieldDef] = {}
        self._by_display: dict[str, FieldDef] = {}
        for d in defs or default_fields():
            self.add(d)

    def add(self, d: FieldDef) -> None:
        self.fields.append(d)
        self.by_name[d.name] = d
        self._lower[d.name.lower()] = d
        self._by_display[d.display_name.lower()] = d
        self._by_display[d.soap.lower()] = d

    def get(self, name: str) -> FieldDef | None:
        return self.by_name.get(name)

    def lookup_loose(self, name: str) -> FieldDef | None:
        """Resolve a display name, SOAP or REST name, case-insensitively (tokens, mappings)."""
        key = name.strip().lower()
        return self._by_display.get(key) or self._lower.get(key)

    def searchable(self) -> list[str]:
        return [f.name for f in self.fields if f.searchable]

    # -- describe payloads -------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        out = []
        for f in self.fields:
            item: dict[str, Any] = {
                "id": f.id, "displayName": f.display_name, "dataType": f.data_type
            }
            if f.length is not None:
                item["length"] = f.length
            item["rest"] = {"name": f.name, "readOnly": not f.updateable}
            item["soap"] = {"name": f.soap, "readOnly": not f.updateable}
            out.append(item)
        return out

    def describe2(self) -> list[dict[str, Any]]:
        fields = []
        for f in self.fields:
            item: dict[str, Any] = {
                "name": f.name,
                "displayName": f.display_name,
                "dataType": f.data_type,
                "updateable": f.updateable,
                "crmManaged": f.crm_managed,
            }
            if f.length is not None:
                item["length"] = f.length
            fields.append(item)
        return [
            {
                "name": "API Lead",
                "searchableFields": [[n] for n in self.searchable()],
                "fields": fields,
            }
        ]

    def field_schema(self, f: FieldDef) -> dict[str, Any]:
        item: dict[str, Any] = {
            "displayName": f.display_name,
            "name": f.name,
            "description": "",
            "dataType": f.data_type,
            "isHidden": False,
            "isHtmlEncodingInEmail": True,
            "isSensitive": False,
            "isCustom": f.custom,
            "isApiCreated": f.custom,
        }
        if f.length is not None:
            item["length"] = f.length
        return item


# -- value handling ------------------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_datetime(text: str) -> datetime | None:
    """ISO 8601 with `Z`, `+hh:mm` or `+hhmm`; naive values are taken as UTC."""
    s = text.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", s):
        s = s[:-2] + ":" + s[-2:]
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def iso(epoch: float) -> str:
    """Marketo's timestamp format: second precision, `Z` suffix."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def coerce(f: FieldDef, value: Any) -> Any:
    """Convert a JSON input value to the stored form, or return INVALID (→ 1001).

    `None` and "" both store null (lead-database.md), i.e. clear the field.
    """
    if value is None or value == "":
        return None
    t = f.data_type
    if isinstance(value, (dict, list)):
        return INVALID
    if t in ("string", "text", "phone", "url", "reference"):
        if isinstance(value, bool):
            return INVALID
        value = value if isinstance(value, str) else str(value)
        if f.length is not None and len(value) > f.length:
            return INVALID
        return value
    if t == "email":
        # Email must be ASCII (leads.md); a minimal shape check avoids junk keys.
        if not isinstance(value, str) or not value.isascii() or "@" not in value:
            return INVALID
        return value
    if t in ("integer", "score"):
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.match(value.strip()):
            return int(value)
        return INVALID
    if t in ("float", "currency", "percent"):
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            return INVALID
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        return INVALID
    if t == "date":
        if not isinstance(value, str):
            return INVALID
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return INVALID
    if t == "datetime":
        if not isinstance(value, str):
            return INVALID
        dt = parse_datetime(value)
        return INVALID if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def render(name: str, value: Any) -> Any:
    """Stored value → JSON value for reads."""
    if name in EPOCH_FIELDS and isinstance(value, (int, float)):
        return iso(value)
    return value


def as_text(value: Any) -> str | None:
    """Values in change activities are strings (booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)


def type_name(f: FieldDef) -> str:
    """Type word used in the 1001 message."""
    return f.data_type
