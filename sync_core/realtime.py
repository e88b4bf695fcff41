"""Real-time "Sync Person to Microsoft": create a Marketo person in Dynamics now.

Called by a Marketo webhook ("Call Webhook" in a trigger campaign). It creates the lead
or contact if the person is not in Dynamics yet and does nothing for someone already
there (no forced sync: updates belong to the background cycle). What it prevents:

* Duplicate Dynamics records. The create is an upsert on the Marketo-id alternate key
  with `If-None-Match: *`, so a duplicate or concurrent delivery, or a background cycle
  running at the same moment, can never produce a second record with that key; a
  per-person lease also serialises deliveries that ask for different tables (lead vs
  contact), which the key alone cannot see.
* Half-done work. The Dynamics create is the commit point; everything after it (writing
  the Dynamics id back on the person, the link row, the activity) is idempotent and is
  completed by the next delivery if this one fails part-way (answering 503). The write
  order (person fields before the link row) also lets the background cycle finish the
  job if no retry ever comes.
* Marketo giving up. Marketo waits 30 s for a webhook and never retries on its own, so
  retries here are short and an overall deadline turns a slow or throttled peer into a
  prompt `503` with `Retry-After` that a "Webhook is Called" retry campaign can act on.
* Brittle token rendering. Marketo renders `{{lead.Id}}` as a number and string tokens
  quoted or not depending on the template; the body parser accepts all of those.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError

from sync_core.access import decode_row, encode_values, known_mapping
from sync_core.activitylog import SYNC_ERROR, SYNC_PERSON, error_entries, log_activities
from sync_core.entrypoints import Reply
from sync_core.errors import (
    AuthFailed,
    ConfigError,
    QuotaExhausted,
    RecordRejected,
    StaleRecord,
    SyncError,
    Throttled,
)
from sync_core.http import RetryPolicy
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.planner import normalize, plan_pair
from sync_core.runtime import CA_BUNDLE_VARS, Runtime, build_runtime, ca_bundle_from_env
from sync_core.settings import Settings, SettingsError, load_settings
from sync_core.state import Link

log = logging.getLogger("sync_core")

SECRET_HEADER = "x-sync-secret"
# 412 codes that mean "a record with this key exists" (not a duplicate-detection rule hit).
# Older services leave the code empty; the client turns that 412 into StaleRecord.
EXISTS_CODES = {"0x80040237", "0x80060892"}

# Marketo abandons a webhook call after 30 s; answer before that whatever happens.
DEADLINE_SECONDS = 25.0
# How long a delivery waits for another delivery for the same person to finish.
LEASE_WAIT_SECONDS = 8.0
# Longer than DEADLINE_SECONDS, so two holders can never overlap; it only matters when
# a worker dies holding the lease.
LEASE_SECONDS = 60
RETRY_AFTER_UNAVAILABLE = 30
RETRY_AFTER_BUSY = 5
RETRY_AFTER_QUOTA = 3600

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

# Tables created once per process and store (the timer normally does it, but a
# webhook can arrive first on a fresh deployment).
_TABLES_READY: set[str] = set()


class BadRequest(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


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


def _secret_ok(settings: Settings, headers: dict[str, str]) -> bool:
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


def _retry_policy() -> RetryPolicy:
    # Short and bounded: a peer asking us to wait longer than this gets a 503 with its
    # own Retry-After straight away instead of holding Marketo's only attempt.
    return RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, max_total_wait=2.0)


# ---- entry -----------------------------------------------------------------------
async def handle_sync_person(
    body: bytes,
    headers: dict[str, str],
    settings: Settings | None = None,
    **runtime_options: Any,
) -> Reply:
    try:
        settings = settings or load_settings()
    except SettingsError as exc:
        log.error("sync-person: %s", exc)
        return Reply(500, {"status": "error", "message": "the function is not configured"})
    if not _secret_ok(settings, headers):
        return Reply(
            401, {"status": "unauthorized", "message": f"missing or wrong {SECRET_HEADER}"}
        )
    try:
        request = parse_body(body)
    except BadRequest as exc:
        return Reply(400, {"status": "invalid", "field": exc.field, "message": str(exc)})

    options = dict(runtime_options)
    if "ca_bundle" not in options:
        bundle = ca_bundle_from_env()
        if bundle and not os.path.exists(bundle):
            log.error("sync-person: CA bundle %s does not exist", bundle)
            return _misconfigured(f"CA bundle {bundle} (from {'/'.join(CA_BUNDLE_VARS)})")
        options["ca_bundle"] = bundle
    options.setdefault("retry", _retry_policy())
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            reply = await _run(settings, request, options)
    except TimeoutError:
        # Outcome unknown; every step is idempotent, so a later retry is safe.
        reply = _unavailable(
            f"no answer within {DEADLINE_SECONDS:g} s; retrying is safe", RETRY_AFTER_BUSY
        )
    except Throttled as exc:
        reply = _unavailable(str(exc), exc.retry_after)
    except QuotaExhausted as exc:
        reply = _unavailable(str(exc), RETRY_AFTER_QUOTA)
    except (AuthFailed, ConfigError) as exc:
        log.error("sync-person %s: %s", request.lead_id, exc)
        reply = _misconfigured(str(exc))
    except (SyncError, AzureError) as exc:
        # TransientError, a StopCycle for a passing Marketo error, a timeout with an
        # unknown outcome, Table Storage unreachable: all "try again later".
        reply = _unavailable(f"{type(exc).__name__}: {exc}", RETRY_AFTER_UNAVAILABLE)
    # Failures at warning level, with the reason, so they surface in the app's logs.
    level = logging.WARNING if reply.status >= 500 else logging.INFO
    log.log(level, "sync-person %s: %s %s", request.lead_id, reply.status, reply.payload)
    return reply


async def _run(settings: Settings, request: SyncRequest, options: dict[str, Any]) -> Reply:
    key = _store_key(settings)
    ready = key in _TABLES_READY
    # Building touches Table Storage (tables, hash key) once per process.
    rt = await build_runtime(settings, ensure_tables=not ready, **options)
    _TABLES_READY.add(key)
    try:
        return await _sync(rt, request)
    finally:
        await rt.aclose()


def _store_key(settings: Settings) -> str:
    where = settings.sync_storage_account_url or settings.sync_storage_connection.get_secret_value()
    return hashlib.sha256(f"{where}|{settings.sync_table_prefix}".encode()).hexdigest()


def _unavailable(message: str, retry_after: float) -> Reply:
    seconds = str(max(1, int(retry_after + 0.999)))
    return Reply(503, {"status": "unavailable", "message": message}, {"Retry-After": seconds})


def _misconfigured(message: str) -> Reply:
    return Reply(500, {"status": "error", "message": f"the function is misconfigured: {message}"})


# ---- the sync ----------------------------------------------------------------------
async def _sync(rt: Runtime, req: SyncRequest) -> Reply:
    m = rt.mapping
    fields = [*m.marketo_fields(), m.dynamics_deleted_field]
    people, links = await asyncio.gather(
        rt.marketo.get_leads("id", [req.lead_id], fields),
        rt.store.links_by_marketo([req.lead_id]),
    )
    if not people:
        return Reply(404, {"status": "not-found", "message": f"no Marketo person {req.lead_id}"})
    person = people[0]
    link = links.get(req.lead_id)
    if link is not None:
        # A delivery that failed after saving the link may have left the person
        # without the Dynamics id: put it back (a Marketo write, never a Dynamics one).
        await _write_back(rt, person, link.dynamics_id, link.entity)
        return _already(link.dynamics_id, link.entity)
    current = str(normalize(person.get(m.dynamics_id_field)) or "")
    if current and not person.get(m.dynamics_deleted_field):
        # Linked by the background cycle (or the link table was lost): nothing to do.
        return _already(current, person.get(m.dynamics_type_field))

    owner = f"sync-person-{uuid.uuid4().hex[:12]}"
    lease = f"person-{req.lead_id}"
    if not await _acquire(rt, owner, lease):
        return _unavailable(
            f"another delivery for person {req.lead_id} is still running", RETRY_AFTER_BUSY
        )
    try:
        # The previous holder may have finished the job while we waited.
        done = await rt.store.links_by_marketo([req.lead_id])
        if req.lead_id in done:
            return _already(done[req.lead_id].dynamics_id, done[req.lead_id].entity)
        return await _create(rt, req, person)
    finally:
        await rt.store.release_lease(owner, lease)


async def _acquire(rt: Runtime, owner: str, lease: str) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + LEASE_WAIT_SECONDS
    while not await rt.store.acquire_lease(owner, LEASE_SECONDS, lease):
        if loop.time() > give_up:
            return False
        await asyncio.sleep(0.1)
    return True


async def _owner_bind(rt: Runtime, assign_to: str) -> dict[str, str]:
    if not assign_to:
        return {}
    if "@" in assign_to:
        literal = assign_to.replace("'", "''")
        # Quoted: an email may hold + & # which would otherwise break the query string.
        query = quote(f"internalemailaddress eq '{literal}'", safe="")
        body = await rt.dataverse.get_json(
            f"systemusers?$select=systemuserid&$filter={query}&$top=2"
        )
        users = body.get("value", [])
        if len(users) != 1:
            raise RecordRejected(
                "OwnerNotFound", f"no single Dynamics user has the email {assign_to}"
            )
        assign_to = str(users[0]["systemuserid"])
    return {"ownerid@odata.bind": f"/systemusers({assign_to})"}


async def _create(rt: Runtime, req: SyncRequest, person: dict[str, Any]) -> Reply:
    # The fields the sync identity may use, with option sets, as the last cycle found
    # them (no metadata calls here: Marketo is waiting).
    m = await known_mapping(rt.store, rt.mapping)
    entity, lead_id = req.sync_as, req.lead_id
    rules = tuple(r for r in m.fields[entity] if r.direction != "to-marketo")
    # Columns the identity may update but not create are left out, and said so.
    left_out = [
        {"field": r.marketo, "column": r.column, "reason": "the sync identity may not create it"}
        for r in rules
        if not r.can_create and normalize(person.get(r.marketo)) is not None
    ]
    rules = tuple(r for r in rules if r.can_create)
    values: dict[str, Any] = {
        r.column: normalize(person.get(r.marketo))
        for r in rules
        if normalize(person.get(r.marketo)) is not None
    }
    record, bad = encode_values(rules, values)
    if bad:
        # A label that is not an option: create without that field and say so.
        await _best_effort("option-set error", _record_bad_options(rt, lead_id, entity, bad))
    record[m.marketo_id_column] = str(lead_id)
    key = ENTITY_KEY[entity]
    address = f"{ENTITY_SET[entity]}({m.marketo_id_column}='{lead_id}')"
    try:
        record.update(await _owner_bind(rt, req.assign_to))
        resp = await rt.dataverse.request(
            "PATCH",
            address,
            json=record,
            headers={
                # Create only: an existing record with this Marketo id answers 412.
                "If-None-Match": "*",
                "Prefer": "return=representation",
                # The Web API skips duplicate detection unless asked; the native
                # connector honours the org's rules, and so do we.
                "MSCRM.SuppressDuplicateDetection": "false",
            },
        )
    except StaleRecord:
        return await _adopt(rt, req, person, address)
    except RecordRejected as exc:
        if exc.code in EXISTS_CODES:
            return await _adopt(rt, req, person, address)
        return await _rejected(rt, lead_id, entity, exc, sorted(record))
    created: dict[str, Any] = resp.json() if resp.content else {}
    if not created.get(key):
        # No representation came back (a proxy or an older service): read it by key.
        created = await rt.dataverse.get_json(address)
    dynamics_id = str(created[key]).lower()

    # From here on the record exists; each step below is idempotent and repeated by
    # the next delivery (through _adopt) if this one fails.
    results = await asyncio.gather(
        _write_back(rt, person, dynamics_id, entity),
        _log_created(rt, req, dynamics_id),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    plan = plan_pair(m.fields[entity], decode_row(rules, created), person, None, rt.hasher)
    link = Link(lead_id, entity, dynamics_id, dict(plan.settled))
    await rt.store.save_links([link], new=True)
    await _best_effort(
        "person log",
        rt.store.record_person_events(
            [
                {
                    "marketoId": lead_id,
                    "entity": entity,
                    "dynamicsId": dynamics_id,
                    "direction": "to-dynamics",
                    "fields": sorted(record),
                    "note": "created by Sync Person to Microsoft",
                    **({"leftOut": [x["field"] for x in left_out]} if left_out else {}),
                }
            ],
        ),
    )
    reply: dict[str, Any] = {"status": "created", "dynamicsId": dynamics_id, "dynamicsType": entity}
    if left_out:
        reply["leftOut"] = left_out
    return Reply(200, reply)


async def _record_bad_options(
    rt: Runtime, lead_id: int, entity: Entity, bad: dict[str, str]
) -> None:
    row = {
        "operation": "create",
        "direction": "to-dynamics",
        "entity": entity,
        "fields": sorted(bad),
        "code": "option-set",
        "message": "; ".join(bad.values()),
        "marketoId": lead_id,
        "dynamicsId": "",
    }
    await rt.store.record_errors([row])
    await log_activities(rt.marketo, SYNC_ERROR, error_entries([row]))


async def _adopt(rt: Runtime, req: SyncRequest, person: dict[str, Any], address: str) -> Reply:
    """A record with this Marketo id exists: an earlier delivery created it (and maybe
    failed before finishing), or someone else did. Finish what is missing: the
    person's Dynamics id and the link row. Nothing is written to Dynamics."""
    m = rt.mapping
    entity, key = req.sync_as, ENTITY_KEY[req.sync_as]
    row = await rt.dataverse.get_json(f"{address}?$select={','.join([key, *m.columns(entity)])}")
    dynamics_id = str(row[key]).lower()
    links = await rt.store.links_by_marketo([req.lead_id])
    if req.lead_id not in links:
        await _write_back(rt, person, dynamics_id, entity)
        plan = plan_pair(m.fields[entity], row, person, None, rt.hasher)
        link = Link(req.lead_id, entity, dynamics_id, dict(plan.settled))
        await rt.store.save_links([link], new=True)
    return _already(dynamics_id, entity)


async def _write_back(
    rt: Runtime, person: dict[str, Any], dynamics_id: str, entity: Entity
) -> None:
    """Put the Dynamics id and type on the person unless they are there already."""
    m = rt.mapping
    if (
        str(normalize(person.get(m.dynamics_id_field)) or "").lower() == dynamics_id.lower()
        and person.get(m.dynamics_type_field) == entity
        and not person.get(m.dynamics_deleted_field)
    ):
        return
    update = {
        "id": int(person["id"]),
        m.dynamics_id_field: dynamics_id.lower(),
        m.dynamics_type_field: entity,
        m.dynamics_deleted_field: False,
    }
    (result,) = await rt.marketo.sync_leads("updateOnly", [update], "id")
    if result.get("status") not in ("updated", "created"):
        # Deleted in Marketo meanwhile: nothing left to write the id on.
        log.warning("sync-person %s: write-back skipped: %s", person["id"], result)


async def _log_created(rt: Runtime, req: SyncRequest, dynamics_id: str) -> None:
    attrs = {"syncAs": req.sync_as, "assignTo": req.assign_to}
    await _best_effort(
        "activity", log_activities(rt.marketo, SYNC_PERSON, [(req.lead_id, dynamics_id, attrs)])
    )


async def _best_effort(what: str, work: Any) -> None:
    # A missing log line must not turn a finished sync into a failure (and a retry).
    try:
        await work
    except (SyncError, AzureError) as exc:
        log.warning("sync-person: could not write the %s: %s", what, exc)


def _already(dynamics_id: str, entity: Any) -> Reply:
    return Reply(
        200,
        {"status": "already-synced", "dynamicsId": dynamics_id.lower(), "dynamicsType": entity},
    )


async def _rejected(
    rt: Runtime, lead_id: int, entity: Entity, exc: RecordRejected, fields: list[str]
) -> Reply:
    row = {
        "operation": "create",
        "direction": "to-dynamics",
        "entity": entity,
        "fields": fields,
        "code": exc.code,
        "message": exc.message,
        "marketoId": lead_id,
        "dynamicsId": "",
    }
    # The error row is the record of truth (a failure here answers 503 and Marketo's
    # retry records it again); the activity is best effort.
    await rt.store.record_errors([row])
    await _best_effort(
        "error activity", log_activities(rt.marketo, SYNC_ERROR, error_entries([row]))
    )
    return Reply(422, {"status": "rejected", "code": exc.code, "message": exc.message})
