"""Real-time "Sync Person to Microsoft": the webhook's edge, from request to answer.

Called by a Marketo webhook ("Call Webhook" in a trigger campaign). This module checks
the secret, parses the body (`webhook_request`), runs the use case (`syncperson`)
within a deadline, its Marketo calls batched with those of concurrent deliveries
(`marketobatch`), counts the Marketo calls it made into the daily quota, and turns
every outcome into an answer Marketo can act on. What it prevents:

* Marketo giving up. Marketo waits 30 s for a webhook and never retries on its own, so
  retries here are short and an overall deadline turns a slow or throttled peer into a
  prompt `503` with `Retry-After` that a "Webhook is Called" retry campaign can act on.
* An unexplained failure. A bad setting answers 500 "not configured" (logged with the
  setting's name), a wrong secret 401, a bad body 400 naming the field.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from azure.core.exceptions import AzureError

from sync_core import quota
from sync_core.errors import AuthFailed, ConfigError, QuotaExhausted, SyncError, Throttled
from sync_core.http import RetryPolicy
from sync_core.marketobatch import BatchedPort, DirectPort, MarketoPort
from sync_core.replies import Reply, misconfigured, unavailable
from sync_core.runtime import CA_BUNDLE_VARS, Runtime, build_runtime, ca_bundle_from_env
from sync_core.settings import Settings, SettingsError, load_settings
from sync_core.syncperson import RETRY_AFTER_BUSY, sync_person
from sync_core.webhook_request import SECRET_HEADER, BadRequest, parse_body, secret_ok
from sync_core.worker import Worker

log = logging.getLogger("sync_core")

# Marketo abandons a webhook call after 30 s; answer before that whatever happens.
DEADLINE_SECONDS = 25.0
RETRY_AFTER_UNAVAILABLE = 30
RETRY_AFTER_QUOTA = 3600

# Tables created once per process and store, for callers without a worker (the CLI and
# tests): a webhook can arrive before the first timer run on a fresh deployment.
_TABLES_READY: set[str] = set()


def _retry_policy() -> RetryPolicy:
    # Short and bounded: a peer asking us to wait longer than this gets a 503 with its
    # own Retry-After straight away instead of holding Marketo's only attempt.
    return RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, max_total_wait=2.0)


async def handle_sync_person(
    body: bytes,
    headers: dict[str, str],
    settings: Settings | None = None,
    *,
    worker: Worker | None = None,
    **runtime_options: Any,
) -> Reply:
    """Answer one delivery. With `worker` (the function app), the run shares the
    worker's store and rate limiters; without, it builds and closes its own runtime
    from `runtime_options` (build_runtime's)."""
    try:
        settings = settings or (worker.settings() if worker else load_settings())
    except SettingsError as exc:
        log.error("sync-person: %s", exc)
        return Reply(500, {"status": "error", "message": "the function is not configured"})
    if not secret_ok(settings, headers):
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
            return misconfigured(f"CA bundle {bundle} (from {'/'.join(CA_BUNDLE_VARS)})")
        options["ca_bundle"] = bundle
    options.setdefault("retry", _retry_policy())
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            async with _runtime(settings, worker, options) as (rt, marketo):
                try:
                    reply = await sync_person(rt, request, marketo)
                finally:
                    await _count_calls(rt, marketo)
    except TimeoutError:
        # Outcome unknown; every step is idempotent, so a later retry is safe.
        reply = unavailable(
            f"no answer within {DEADLINE_SECONDS:g} s; retrying is safe", RETRY_AFTER_BUSY
        )
    except Throttled as exc:
        reply = unavailable(str(exc), exc.retry_after)
    except QuotaExhausted as exc:
        reply = unavailable(str(exc), RETRY_AFTER_QUOTA)
    except (AuthFailed, ConfigError) as exc:
        log.error("sync-person %s: %s", request.lead_id, exc)
        reply = misconfigured(str(exc))
    except (SyncError, AzureError) as exc:
        # TransientError, a StopCycle for a passing Marketo error, a timeout with an
        # unknown outcome, Table Storage unreachable: all "try again later".
        reply = unavailable(f"{type(exc).__name__}: {exc}", RETRY_AFTER_UNAVAILABLE)
    # Failures at warning level, with the reason, so they surface in the app's logs.
    level = logging.WARNING if reply.status >= 500 else logging.INFO
    log.log(level, "sync-person %s: %s %s", request.lead_id, reply.status, reply.payload)
    return reply


@asynccontextmanager
async def _runtime(
    settings: Settings, worker: Worker | None, options: dict[str, Any]
) -> AsyncIterator[tuple[Runtime, MarketoPort]]:
    """The run's runtime and the port its Marketo calls go through: the worker's
    batcher when there is a worker (concurrent deliveries share its calls), else the
    run's own client."""
    if worker is not None:
        async with worker.runtime(settings, **options) as rt:
            batcher = await worker.marketo_batcher(
                settings, retry=options["retry"],
                marketo_transport=options.get("marketo_transport"),
            )  # fmt: skip
            yield rt, BatchedPort(rt.marketo, batcher)
        return
    key = _store_key(settings)
    ready = key in _TABLES_READY
    rt = await build_runtime(settings, ensure_tables=not ready, **options)
    _TABLES_READY.add(key)
    try:
        yield rt, DirectPort(rt.marketo)
    finally:
        await rt.aclose()


async def _count_calls(rt: Runtime, marketo: MarketoPort) -> None:
    # Marketo counts every call the API user makes against one daily quota; the cycle
    # plans its share from this counter, so the webhook's calls go in it too. Batched
    # calls are on the worker's client: each delivery adds the ones made since the last
    # delivery took them, so each is counted once (a batch's calls are made before its
    # waiters are answered, so they are taken by one of them or a later delivery).
    calls = rt.marketo.calls + marketo.take_batch_calls()
    if not calls:
        return
    try:
        await rt.store.add_to_value(quota.KIND, quota.quota_day(), calls)
    except AzureError as exc:
        log.warning("sync-person: could not count %d Marketo calls: %s", calls, exc)


def _store_key(settings: Settings) -> str:
    where = settings.sync_storage_account_url or settings.sync_storage_connection.get_secret_value()
    return hashlib.sha256(f"{where}|{settings.sync_table_prefix}".encode()).hexdigest()
