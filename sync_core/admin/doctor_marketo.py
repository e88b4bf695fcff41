"""`doctor`'s Marketo checks: endpoint, credentials, the sync's custom fields, activity types.

Each names the Marketo admin screen that fixes it; a failure that makes the later
checks meaningless (no endpoint, a refused token) skips them instead of piling up
errors with one cause.
"""

from __future__ import annotations

from sync_core.activitylog import TYPES
from sync_core.admin.checks import FAST, README, Report, error_text
from sync_core.errors import AccessDenied, AuthFailed, SyncError, TransientError
from sync_core.fieldrules import MarketoField
from sync_core.mapping import Mapping as SyncMapping
from sync_core.marketo import MarketoClient
from sync_core.metadata import marketo_fields
from sync_core.runtime import build_marketo
from sync_core.settings import Settings

GUID_LENGTH = 36


async def check_marketo(
    s: Settings, mapping: SyncMapping | None, r: Report
) -> dict[str, MarketoField] | None:
    names = ["marketo.credentials", "marketo.fields", "marketo.activity_types"]
    mk = build_marketo(s, timeout=min(s.sync_http_timeout_seconds, 20), retry=FAST)
    # A token cached in this process would hide a wrong or rotated secret.
    mk.forget_token()
    try:
        try:
            fields = await marketo_fields(mk)
        except TransientError as exc:
            r.add(
                "marketo.endpoint",
                "FAIL",
                f"cannot reach {s.marketo_base_url}: {error_text(exc)}",
                "set MARKETO_BASE_URL to Admin -> Web Services -> REST API 'Endpoint' without "
                "/rest, and allow outbound HTTPS to it",
            )
            r.skip(names, "Marketo endpoint unreachable")
            return None
        except AuthFailed as exc:
            r.add("marketo.endpoint", "PASS", f"{s.marketo_base_url} answered")
            if isinstance(exc, AccessDenied):
                r.add(
                    "marketo.credentials",
                    "FAIL",
                    f"token issued, but the API user may not read people: {error_text(exc)}",
                    "give the API user's role 'Read-Write Person' (Admin -> Users & Roles)",
                )
            else:
                r.add(
                    "marketo.credentials",
                    "FAIL",
                    error_text(exc),
                    "copy Client Id / Client Secret from Admin -> LaunchPoint -> the sync's "
                    "service -> View Details into MARKETO_CLIENT_ID / MARKETO_CLIENT_SECRET",
                )
            r.skip(names[1:], "Marketo credentials failed")
            return None
        except (SyncError, ValueError, KeyError) as exc:
            r.add(
                "marketo.endpoint",
                "FAIL",
                f"{s.marketo_base_url} did not answer like Marketo's REST API: {error_text(exc)}",
                "set MARKETO_BASE_URL to the REST 'Endpoint' without /rest, e.g. "
                "https://123-ABC-456.mktorest.com",
            )
            r.skip(names, "Marketo endpoint did not answer as expected")
            return None
        r.add("marketo.endpoint", "PASS", f"{s.marketo_base_url} answered")
        r.add(
            "marketo.credentials",
            "PASS",
            f"client id {s.marketo_client_id} got a token and read the person schema",
        )
        if mapping is None:
            r.skip(["marketo.fields"], "the mapping file is invalid")
        else:
            _marketo_link_fields(mapping, fields, r)
        await _marketo_activity_types(mk, r)
        return fields
    finally:
        await mk.aclose()


def _marketo_link_fields(mapping: SyncMapping, fields: dict[str, MarketoField], r: Report) -> None:
    wanted = [
        (mapping.dynamics_id_field, ("string",), "String", GUID_LENGTH),
        (mapping.dynamics_type_field, ("string",), "String", len("contact")),
        (mapping.dynamics_deleted_field, ("boolean",), "Boolean", None),
    ]
    problems = []
    for name, types, label, min_length in wanted:
        f = fields.get(name)
        if f is None:
            problems.append(f"'{name}' is missing (create it as {label})")
        elif f.data_type not in types:
            problems.append(f"'{name}' is {f.data_type}, not {label}")
        elif not f.updateable:
            problems.append(f"'{name}' is read-only for the API")
        elif min_length and f.length is not None and f.length < min_length:
            problems.append(f"'{name}' holds {f.length} characters, needs {min_length}")
    names = ", ".join(n for n, *_ in wanted)
    if problems:
        r.add(
            "marketo.fields",
            "FAIL",
            "custom person fields: " + "; ".join(problems),
            "Admin -> Field Management -> New Custom Field with exactly these API names and "
            f"types ({README} step 1.5), or change [marketo] in the mapping file",
        )
    else:
        r.add("marketo.fields", "PASS", f"custom person fields present: {names}")


async def _marketo_activity_types(mk: MarketoClient, r: Report) -> None:
    try:
        body = await mk.call("GET", "/rest/v1/activities/external/types.json")
    except AuthFailed as exc:
        r.add(
            "marketo.activity_types",
            "WARN",
            f"cannot list custom activity types: {error_text(exc)}; sync errors and real-time "
            "creates are not written to people's activity logs",
            "give the API role 'Read-Write Activity Metadata' and 'Read-Write Activity', "
            "then run python -m sync_core setup",
        )
        return
    status = {t.get("apiName"): str(t.get("status", "")) for t in body.get("result") or []}
    missing = [n for n in TYPES if not status.get(n, "").startswith("approved")]
    if missing:
        r.add(
            "marketo.activity_types",
            "WARN",
            f"custom activity types not approved: {', '.join(missing)}; the sync runs, but "
            "these activity log lines are skipped",
            "run python -m sync_core setup (creates and approves them)",
        )
    else:
        r.add("marketo.activity_types", "PASS", f"approved: {', '.join(TYPES)}")
