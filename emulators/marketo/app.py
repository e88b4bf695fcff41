"""ASGI app: identity, the REST/bulk dispatcher (auth → faults → limits → handler →
server time) and the admin API mount.

One dispatcher applies the cross-cutting rules in Marketo's order for every endpoint,
so no handler can forget the token check, the 606/607/615 limits, the 413/414 size
limits or the statistics the tests assert on. It also spends each call's sampled
server time while the call holds its concurrency slot, enforces server timeouts and
loses the answer of a committed write, so the world profiles act on every endpoint
alike.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from emulators.marketo import bulk, custom_activities, feeds, leads
from emulators.marketo.admin import admin_routes
from emulators.marketo.config import MarketoConfig
from emulators.marketo.envelope import (
    ApiError,
    Dropped,
    edge_error,
    failure,
    json_response,
    plain,
    request_id,
    success,
)
from emulators.marketo.limits import FAULT_MESSAGES, Latency, rate_message
from emulators.marketo.state import Call, Emulator

log = logging.getLogger("emulators.marketo")
Handler = Callable[[Call], Awaitable[Any]]

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/rest/v1/leads/describe.json", leads.describe),
    ("GET", "/rest/v1/leads/describe2.json", leads.describe2),
    ("GET", "/rest/v1/leads/schema/fields.json", leads.schema_fields),
    ("POST", "/rest/v1/leads/schema/fields.json", leads.create_fields),
    ("GET", "/rest/v1/leads/schema/fields/{name}.json", leads.schema_field),
    ("GET", "/rest/v1/leads/partitions.json", leads.partitions),
    ("GET", "/rest/v1/leads.json", leads.get_leads),
    ("POST", "/rest/v1/leads.json", leads.sync_leads),
    ("GET", "/rest/v1/lead/{id}.json", leads.get_lead),
    ("POST", "/rest/v1/leads/delete.json", leads.delete_leads),
    # Not in swagger, but the older Delete Leads form used by marketorestpython.
    ("DELETE", "/rest/v1/leads.json", leads.delete_leads),
    ("POST", "/rest/v1/leads/{id}/merge.json", leads.merge),
    ("GET", "/rest/v1/activities/pagingtoken.json", feeds.paging_token),
    ("GET", "/rest/v1/activities.json", feeds.activities),
    ("GET", "/rest/v1/activities/leadchanges.json", feeds.lead_changes),
    ("GET", "/rest/v1/activities/deletedleads.json", feeds.deleted_leads),
    ("GET", "/rest/v1/activities/types.json", feeds.activity_types),
    ("GET", "/rest/v1/activities/external/types.json", custom_activities.list_types),
    ("GET", "/rest/v1/activities/external/type/{apiName}/describe.json",
     custom_activities.describe_type),
    ("POST", "/rest/v1/activities/external/type.json", custom_activities.create_type),
    ("POST", "/rest/v1/activities/external/type/{apiName}.json", custom_activities.update_type),
    ("POST", "/rest/v1/activities/external/type/{apiName}/approve.json",
     custom_activities.approve_type),
    ("POST", "/rest/v1/activities/external/type/{apiName}/discardDraft.json",
     custom_activities.discard_draft),
    ("POST", "/rest/v1/activities/external/type/{apiName}/delete.json",
     custom_activities.delete_type),
    ("POST", "/rest/v1/activities/external/type/{apiName}/attributes/create.json",
     custom_activities.attributes_create),
    ("POST", "/rest/v1/activities/external/type/{apiName}/attributes/update.json",
     custom_activities.attributes_update),
    ("POST", "/rest/v1/activities/external/type/{apiName}/attributes/delete.json",
     custom_activities.attributes_delete),
    ("POST", "/rest/v1/activities/external.json", custom_activities.add_activities),
    ("GET", "/rest/v1/stats/usage.json", lambda call: _usage(call)),
    ("GET", "/bulk/v1/leads/export.json", bulk.list_jobs),
    ("POST", "/bulk/v1/leads/export/create.json", bulk.create),
    ("POST", "/bulk/v1/leads/export/{exportId}/enqueue.json", bulk.enqueue),
    ("POST", "/bulk/v1/leads/export/{exportId}/cancel.json", bulk.cancel),
    ("GET", "/bulk/v1/leads/export/{exportId}/status.json", bulk.status),
    ("GET", "/bulk/v1/leads/export/{exportId}/file.json", bulk.file),
]


async def _usage(call: Call) -> dict[str, Any]:
    from emulators.marketo.fields import iso

    users = [{"userId": next((u.email for u in call.emu.config.users if u.client_id == k), k),
              "count": v} for k, v in call.emu.stats.by_user.items()]
    return success(call.rid, [{"date": iso(call.emu.now())[:10] + "T00:00:00Z",
                               "total": call.emu.limiter.quota_used, "users": users}])


class Router:
    """Exact paths in a dict, templated ones as regexes; method tables per template."""

    def __init__(self) -> None:
        self.exact: dict[str, dict[str, Handler]] = {}
        self.patterns: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = []
        for method, template, handler in ROUTES:
            if "{" not in template:
                self.exact.setdefault(template, {})[method] = handler
                continue
            for _rx, tpl, table in self.patterns:
                if tpl == template:
                    table[method] = handler
                    break
            else:
                rx = re.compile(
                    "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+?)", re.escape(template)) + "$"
                )
                self.patterns.append((rx, template, {method: handler}))

    def match(self, path: str) -> tuple[str, dict[str, Handler], dict[str, str]] | None:
        table = self.exact.get(path)
        if table is not None:
            return path, table, {}
        for rx, template, table in self.patterns:
            m = rx.match(path)
            if m:
                return template, table, {k: urllib.parse.unquote(v)
                                         for k, v in m.groupdict().items()}
        return None


ROUTER = Router()


def _merge(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Repeated parameters (`fields=a&fields=b`) join with commas, as list parameters do."""
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def _error(rid: str, code: str, message: str) -> Response:
    return json_response(failure(rid, code, message))


async def _fault(emu: Emulator, kind: str, delay: float, rid: str) -> Response:
    if kind.startswith("http"):
        return plain(int(kind[4:] or 500), "Injected server error")
    if kind.startswith("edge"):
        return edge_error(int(kind[4:] or 502))
    if kind == "timeout":
        await asyncio.sleep(emu.config.scaled(delay))
        return _error(rid, "604", FAULT_MESSAGES["604"])
    return _error(rid, kind, FAULT_MESSAGES.get(kind, "Injected error"))


#: World fault kinds answered before the limits without counting (error-codes.md marks
#: 601/602/604 as not counted); the others count like the real 606/615/5xx would.
_UNCOUNTED = ("604", "hold", "token", "608", "611")


async def _world_fault(
    emu: Emulator, kind: str, endpoint: str, user: str, token: str | None, rid: str,
    now: float,
) -> Response:
    cfg = emu.config
    if kind not in _UNCOUNTED:
        emu.limiter.admit(now)
    if kind == "hold":
        # The server keeps the connection (and its concurrency slot) past any sane
        # client timeout, then gives up with 604.
        emu.limiter.in_flight += 1
        try:
            await asyncio.sleep(cfg.scaled(cfg.client_hold_s))
        finally:
            emu.limiter.in_flight -= 1
        kind = "604"
    elif kind == "token":
        # Token expiry mid-paging: the caller's token dies now.
        emu.tokens.expire(token, now)
        kind = emu.world.choice(("602", "602", "601"))
        emu.stats.record(endpoint, None, kind)
        return _error(rid, kind, "Access token expired" if kind == "602"
                      else "Access token invalid")
    emu.stats.record(endpoint, user, kind)
    if kind == "606" and cfg.rate_limit_calls:
        return _error(rid, "606", rate_message(cfg))
    return await _fault(emu, kind, 0.0, rid)


async def _run(
    emu: Emulator, call: Call, handler: Handler, endpoint: str, world_fixed_s: float
) -> tuple[str | None, Any]:
    """Run the handler, then spend the rest of the call's server time."""
    cfg = emu.config
    code: str | None = None
    try:
        result = await handler(call)
    except ApiError as exc:
        code = exc.code
        result = failure(call.rid, exc.code, exc.message)
    except Exception:
        log.exception("unhandled error in %s", endpoint)
        code = "611"
        result = failure(call.rid, "611", "System error")
    lat = emu.latency.get(endpoint) or emu.latency.get("*")
    fixed = cfg.latency_fixed_s + (lat.fixed_s if lat else 0.0)
    per = cfg.latency_per_record_s + (lat.per_record_s if lat else 0.0)
    delay = fixed + per * call.records
    if world_fixed_s or call.scanned:
        delay += world_fixed_s + cfg.feed_scan_cost_s * call.scanned
    delay = cfg.scaled(delay)
    if not call.spent:
        delay += call.per_record_s * call.records
    if delay > 0:
        await asyncio.sleep(delay)
    return code, result


def make_api(emu: Emulator) -> Callable[[Request], Awaitable[Response]]:
    cfg = emu.config

    async def api(request: Request) -> Response:
        now = emu.now()
        rid = request_id(now)
        query = request.scope.get("query_string", b"")
        if len(request.scope.get("raw_path", b"")) + len(query) > cfg.max_uri_bytes:
            return plain(414, "Request-URI Too Long")
        path: str = request.url.path
        method = request.method
        limit = cfg.max_bulk_body_bytes if path.startswith("/bulk/") else cfg.max_body_bytes
        clen = request.headers.get("content-length")
        if clen and clen.isdigit() and int(clen) > limit:
            return plain(413, "Request Entity Too Large")
        body = await request.body()
        if len(body) > limit:
            return plain(413, "Request Entity Too Large")
        params = _merge(request.query_params.multi_items())
        content_type = request.headers.get("content-type", "").lower()
        form: dict[str, str] = {}
        if method == "POST" and "x-www-form-urlencoded" in content_type:
            form = _merge(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                 keep_blank_values=True))
        # `_method=GET` may sit in the query string or in the form body (clients do both).
        tunnelled = method == "POST" and (
            params.get("_method", "") or form.get("_method", "")).upper() == "GET"

        token = None
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        elif cfg.allow_access_token_param:
            token = params.get("access_token")
        if tunnelled and form:
            if token is None and cfg.allow_access_token_param:
                token = form.get("access_token")
            params.update(form)
        match = ROUTER.match(path)
        if tunnelled:
            method = "GET"
        endpoint = f"{method} {match[0] if match else '(unknown)'}"

        user, auth_err = emu.tokens.check(token, now)
        if user is None:
            # 601/602 are not counted against the quota or the rate window.
            assert auth_err is not None
            emu.stats.record(endpoint, None, auth_err)
            msg = "Access token expired" if auth_err == "602" else "Access token invalid"
            return _error(rid, auth_err, msg)
        if match is not None and method not in match[1]:
            emu.stats.record(endpoint, user.client_id, "605")
            return _error(rid, "605", "HTTP Method not supported")
        if tunnelled and "x-www-form-urlencoded" not in content_type:
            emu.stats.record(endpoint, user.client_id, "612")
            return _error(rid, "612", "Invalid Content Type")

        fault = emu.faults.pick(endpoint)
        if fault is not None:
            if fault.kind not in ("604", "608", "611", "timeout"):
                emu.limiter.admit(now)  # these still count, like a real 606/615 would
            emu.stats.record(endpoint, user.client_id,
                             "604" if fault.kind == "timeout" else fault.kind)
            return await _fault(emu, fault.kind, fault.delay_s, rid)
        world = emu.world
        if cfg.noise_per_hour > 0:
            world.catch_up(now, emu.log, emu.store)
        aimed = not cfg.fault_users or user.client_id in cfg.fault_users
        kind = (
            world.pick_fault(endpoint, "nextPageToken" in params)
            if cfg.fault_rates and aimed
            else None
        )
        lost = kind is not None and kind.startswith("lost")
        if kind is not None and not lost:
            return await _world_fault(emu, kind, endpoint, user.client_id, token, rid, now)
        rejected = emu.limiter.admit(now)
        if rejected is not None:
            emu.stats.record(endpoint, user.client_id, rejected[0])
            return _error(rid, rejected[0], rejected[1])
        if match is None:
            emu.stats.record(endpoint, user.client_id, "610")
            return _error(rid, "610", "Requested resource not found")

        call = Call(emu, user, rid, params, match[2], body, dict(request.headers), content_type)
        world_fixed, world_per = world.sample(endpoint)
        call.per_record_s = cfg.scaled(world_per)
        timeout = world.timeout_for(endpoint)
        emu.limiter.in_flight += 1
        try:
            work = _run(emu, call, match[1][method], endpoint, world_fixed)
            if timeout is None:
                code, result = await work
            else:
                try:
                    code, result = await asyncio.wait_for(work, cfg.scaled(timeout))
                except TimeoutError:
                    # Server-side timeout (leads.md "Timeouts"): what was written so far
                    # stays written; the caller learns nothing but 604.
                    code, result = "604", failure(rid, "604", FAULT_MESSAGES["604"])
        finally:
            emu.limiter.in_flight -= 1
        if lost and code is None:
            # The write committed; the answer never reaches the client. `lost` picks
            # the way at random; `lost-drop`, `lost-edge502`, `lost-604` force one.
            assert kind is not None
            how = kind[5:] or world.choice(("edge502", "604", "drop"))
            emu.stats.record(endpoint, user.client_id, how)
            if how == "drop":
                return Dropped()
            return await _fault(emu, how, 0.0, rid)
        emu.stats.record(endpoint, user.client_id, code)
        if isinstance(result, Response):
            return result
        return json_response(result)

    return api


def make_identity(emu: Emulator) -> Callable[[Request], Awaitable[Response]]:
    async def identity(request: Request) -> Response:
        cfg = emu.config
        if "identity" in cfg.latency_model:
            await asyncio.sleep(cfg.scaled(emu.world.sample("identity")[0]))
        params = dict(request.query_params)
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if "x-www-form-urlencoded" in ctype:
                # Lenient: swagger puts the credentials in the query, some clients post a form.
                form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
                params = {**form, **params}
        if params.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "grant_type must be client_credentials"},
                                status_code=400)
        user = emu.tokens.user_for(params.get("client_id", ""), params.get("client_secret", ""))
        if user is None:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "Bad client credentials"}, status_code=401)
        now = emu.now()
        tok = emu.tokens.issue(user, now)
        # Remaining whole seconds: a fresh 3600 s token reports 3599.
        remaining = max(0, int(tok.expires_at - now - 1e-6))
        return JSONResponse({"access_token": tok.value, "token_type": "bearer",
                             "expires_in": remaining, "scope": user.email})

    return identity


def create_app(config: MarketoConfig | None = None) -> Starlette:
    emu = Emulator(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emu.webhooks.wait_idle()
        if emu.webhooks.client is not None:
            await emu.webhooks.client.aclose()

    app = Starlette(
        routes=[
            Route("/identity/oauth/token", make_identity(emu), methods=["GET", "POST"]),
            Mount("/_emulator", routes=admin_routes(emu)),
            Route("/{path:path}", make_api(emu),
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        ],
        lifespan=lifespan,
    )
    app.state.emulator = emu
    return app


__all__ = ["Latency", "create_app"]
