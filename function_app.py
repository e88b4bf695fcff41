"""Azure Functions entry point (Python v2 model): registers the functions, nothing more.

sync_timer (timer), sync_person (the Marketo webhook), sync_status and sync_dashboard
(the health document and page, function key required).

All behaviour lives in `sync_core`, which never imports `azure.functions`; this file
only translates between the Functions bindings and `sync_core.entrypoints`.
"""

from __future__ import annotations

import logging

import azure.functions as func

import sync_core.entrypoints as entrypoints

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
# OpenTelemetry to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set.
entrypoints.configure_telemetry()
# The composition root of this worker process: every invocation it serves shares its
# store and its Marketo and Dataverse rate limiters.
worker = entrypoints.Worker()


# `%SYNC_SCHEDULE%` is resolved by the host from the app setting (the Bicep sets it to
# the native connector's 5-minute beat); a missing setting stops the function indexing.
@app.timer_trigger(
    schedule="%SYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
async def sync_timer(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.info("sync_timer is past due; running the missed cycle now")
    await entrypoints.run_scheduled_cycle(worker)


@app.route(route="sync-person", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def sync_person(req: func.HttpRequest) -> func.HttpResponse:
    reply = await entrypoints.sync_person(req.get_body(), dict(req.headers), worker)
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype="application/json"
    )


@app.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def sync_status(req: func.HttpRequest) -> func.HttpResponse:
    reply = await entrypoints.status_document(worker)
    return func.HttpResponse(reply.body, status_code=reply.status, mimetype="application/json")


@app.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def sync_dashboard(req: func.HttpRequest) -> func.HttpResponse:
    page = await entrypoints.dashboard(worker)
    return func.HttpResponse(page.html, status_code=page.status, mimetype="text/html")
