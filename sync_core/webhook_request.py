"""The Sync Person webhook's request: its body parsed and its secret checked (pure).

What it prevents: brittle token rendering. Marketo renders `{{lead.Id}}` as a number and
string tokens quoted or not depending on the template; the parser accepts all of those
and then validates strictly, so a bad body gets a 400 naming the field, never a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sync_core.errors import BadRequest
from sync_core.mapping import Entity
from sync_core.settings import Settings

log = logging.getLogger("sync_core")

SECRET_HEADER = "x-sync-secret"
MAX_BODY_BYTES = 64 * 1024
MAX_LEAD_ID = 2**31 - 1  # Marketo person ids are 32-bit integers
_LEAD_ID = re.compile(r"[0-9]{1,12}(?:\.0*)?", re.ASCII)
_GUID = re.compile(
    r"\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?", re.ASCII | re.I
)
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
# `""value""`: a string token quoted by Marketo *and* by the template.
_DOUBLE_QUOTED = re.compile(r'""((?:[^"\\]|\\.)*)""')
# `"key": ,` / `"key": }`: an empty token the template did not quote.
_EMPTY_VALUE = re.compile(r"(:\s*)(?=[,}])")
# `"key": some text,`: a string token neither Marketo nor the template quoted.
# (The value never spans a ':' or whitespace at its ends, which keeps matching linear.)
_BARE_VALUE = re.compile(r'(:\s*)([^\s"\[\]{},:](?:[^"\[\]{},:]*[^\s"\[\]{},:])?)(\s*)(?=[,}])')
_JSON_WORDS = re.compile(r"-?[0-9][0-9.eE+-]*|true|false|null", re.ASCII)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    lead_id: int
    sync_as: Entity
    assign_to: str  # "" (default owner), a systemuser id (lower-case GUID) or an email


# ---- request parsing -------------------------------------------------------------
def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    # Only reached for invalid JSON: undo the two ways a Marketo template can render a
    # string token (quoted twice or not at all) and the empty unquoted token. Fields
    # are still validated strictly afterwards, so a bad repair can only lead to a 400.
    repaired = _DOUBLE_QUOTED.sub(r'"\1"', text)
    repaired = _EMPTY_VALUE.sub(r"\1null", repaired)
    repaired = _BARE_VALUE.sub(_quote_bare, repaired)
    return json.loads(repaired)


def _quote_bare(m: re.Match[str]) -> str:
    value = m.group(2).strip()
    if _JSON_WORDS.fullmatch(value):
        return m.group(0)
    return f"{m.group(1)}{json.dumps(value)}{m.group(3)}"


def _lead_id(value: Any) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRequest("leadId", "is required (use the token {{lead.Id}})")
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif isinstance(value, str) and _LEAD_ID.fullmatch(value.strip()):
        number = int(value.strip().split(".")[0])
    else:
        number = None
    if number is None or not 1 <= number <= MAX_LEAD_ID:
        shown = json.dumps(value)[:40] if not isinstance(value, str) else repr(value[:40])
        raise BadRequest("leadId", f"must be a Marketo person id, got {shown}")
    return number


def _optional_text(value: Any, field: str, expected: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(field, f"must be {expected}")
    text = value.strip()
    # An empty token inside template quotes: Marketo may render it as null, so "null".
    return "" if text.lower() == "null" else text


def _sync_as(value: Any) -> Entity:
    text = _optional_text(value, "syncAs", "'lead' or 'contact'").lower() or "lead"
    if text == "lead":
        return "lead"
    if text == "contact":
        return "contact"
    raise BadRequest("syncAs", "must be 'lead' or 'contact'")


def _assign_to(value: Any) -> str:
    text = _optional_text(value, "assignTo", "a Dynamics user id or email address")
    if not text:
        return ""
    guid = _GUID.fullmatch(text)
    if guid:
        return guid.group(1).lower()
    if _EMAIL.fullmatch(text):
        return text
    raise BadRequest("assignTo", "must be a Dynamics user id or email address")


def parse_body(body: bytes) -> SyncRequest:
    """Validate the webhook body; raise BadRequest naming the offending field."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("body", f"must be at most {MAX_BODY_BYTES} bytes")
    try:
        data = _loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("body", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object")
    # Key case is forgiven: the names are typed by hand into the Marketo template.
    fields = {str(k).strip().lower(): v for k, v in data.items()}
    return SyncRequest(
        _lead_id(fields.get("leadid")),
        _sync_as(fields.get("syncas")),
        _assign_to(fields.get("assignto")),
    )


def secret_ok(settings: Settings, headers: dict[str, str]) -> bool:
    expected = settings.sync_webhook_secret.get_secret_value()
    if not expected:
        log.error("sync-person: SYNC_WEBHOOK_SECRET is not set; refusing every call")
        return False
    given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), "")
    # Hash first so the comparison takes the same time whatever the lengths are.
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(given.strip().encode()).digest(), digest(expected.encode()).digest()
    )
