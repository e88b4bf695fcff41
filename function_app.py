"""Azure Functions entry point (Python v2 model): registers the functions, nothing more.

sync_timer (timer), sync_person (the Marketo webhook), sync_status and sync_dashboard
(the health document and page, function key required).

All behaviour lives in `sync_core`, which never imports `azure.functions`; this file
only translates between the Functions bindings and `sync_core.entrypoints`.
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

import sync_core.entrypoints as entrypoints

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
# OpenTelemetry to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set.
entrypoints.configure_telemetry()

# Read at indexing time so an app setting can change the beat without a code change;
# the default is the native connector's 5-minute cycle.
SCHEDULE = os.environ.get("SYNC_SCHEDULE") or "0 */5 * * * *"


@app.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def sync_timer(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.info("sync_timer is past due; running the missed cycle now")
    await entrypoints.run_scheduled_cycle()


@app.route(route="sync-person", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def sync_person(req: func.HttpRequest) -> func.HttpResponse:
    reply = await entrypoints.sync_person(req.get_body(), dict(req.headers))
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype="application/json"
    )


@app.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def sync_status(req: func.HttpRequest) -> func.HttpResponse:
    reply = await entrypoints.status_document()
    return func.HttpResponse(reply.body, status_code=reply.status, mimetype="application/json")


@app.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def sync_dashboard(req: func.HttpRequest) -> func.HttpResponse:
    page = await entrypoints.dashboard()
    return func.HttpResponse(page.html, status_code=page.status, mimetype="text/html")
