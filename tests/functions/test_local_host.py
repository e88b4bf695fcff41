"""The local functions host serves HTTP functions with keys and fires timers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import azure.functions as func
import httpx
import pytest

from emulators.functions import create_host
from emulators.functions.ncrontab import Schedule, ScheduleError
from tests.support.servers import running_server


def make_app() -> tuple[func.FunctionApp, list[str]]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    calls: list[str] = []

    @app.route(route="echo", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            req.get_body(), status_code=201, headers={"X-Q": req.params.get("q", "")}
        )

    @app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def open_(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("bug")

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    async def tick(timer: func.TimerRequest) -> None:
        calls.append("tick")

    return app, calls


def test_function_key_is_enforced_and_request_is_translated():
    app, _ = make_app()
    host = create_host(app, function_key="fk", master_key="mk", run_timers=False)
    with running_server(host) as url, httpx.Client(base_url=url) as c:
        assert c.post("/api/echo", content=b"hi").status_code == 401
        assert c.post("/api/echo?code=wrong", content=b"hi").status_code == 401
        r = c.post("/api/echo?q=1", content=b"hi", headers={"x-functions-key": "fk"})
        assert (r.status_code, r.content, r.headers["x-q"]) == (201, b"hi", "1")
        assert c.post("/api/echo?code=mk", content=b"x").status_code == 201
        assert c.get("/api/open").text == "ok"
        assert c.get("/api/boom").status_code == 500
        assert c.get("/api/echo", headers={"x-functions-key": "fk"}).status_code == 405


def test_timer_fires_on_short_period_and_on_admin_request():
    app, calls = make_app()
    host = create_host(app, function_key="fk", master_key="mk", timer_period=0.2)
    with running_server(host) as url, httpx.Client(base_url=url) as c:
        for _ in range(100):
            if calls:
                break
            time.sleep(0.05)
        assert calls, "timer never fired"
        assert c.post("/admin/functions/tick?wait=true").status_code == 401
        before = len(calls)
        r = c.post("/admin/functions/tick?wait=true", headers={"x-functions-key": "mk"})
        assert r.status_code == 200 and len(calls) > before
        assert c.post("/admin/functions/nope", headers={"x-functions-key": "mk"}).status_code == 404


def test_ncrontab_schedule():
    s = Schedule("0 */5 * * * *")
    t = s.next_after(datetime(2026, 11, 25, 10, 3, 7, tzinfo=UTC))
    assert t == datetime(2026, 11, 25, 10, 5, 0, tzinfo=UTC)
    assert s.next_after(t) == datetime(2026, 11, 25, 10, 10, 0, tzinfo=UTC)
    weekdays = Schedule("0 30 9 * * 1-5")
    # 2026-11-28 is a Saturday: next run is Monday 09:30
    assert weekdays.next_after(datetime(2026, 11, 28, tzinfo=UTC)) == datetime(
        2026, 11, 30, 9, 30, tzinfo=UTC
    )
    # A day of the month and a day of the week: both must hold (NCrontab), so the next
    # run is Friday the 13th, not the first Friday (Vixie cron's either-or).
    friday_13th = Schedule("0 30 9 13 * 5")
    assert friday_13th.next_after(datetime(2026, 11, 1, tzinfo=UTC)) == datetime(
        2026, 11, 13, 9, 30, tzinfo=UTC
    )
    with pytest.raises(ScheduleError):
        Schedule("0 61 * * * *")
    with pytest.raises(ScheduleError):
        Schedule("* * *")
