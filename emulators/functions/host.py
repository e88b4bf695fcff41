"""Serve a v2-model `azure.functions.FunctionApp` over HTTP, as `func start` would.

Differences from Core Tools that matter are deliberate and documented in
emulators/README.md: function keys ARE enforced (Core Tools skips them locally, which
hides a missing `?code=` until production), and `POST /admin/functions/<name>?wait=true`
runs a timer function to completion so a demo or test can wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.functions.ncrontab import Schedule

log = logging.getLogger("emulators.functions")

# Documented in the README; override with FUNCTIONS_LOCAL_KEY / FUNCTIONS_LOCAL_MASTER_KEY.
LOCAL_FUNCTION_KEY = "local-function-key"
LOCAL_MASTER_KEY = "local-master-key"


def _resolve_schedule(expression: str) -> str:
    # `%NAME%` reads an app setting, as the real host does.
    if expression.startswith("%") and expression.endswith("%"):
        name = expression.strip("%")
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"timer schedule refers to app setting {name}, which is not set")
        return value
    return expression


class FunctionsHost:
    def __init__(
        self,
        app: func.FunctionApp,
        *,
        function_key: str,
        master_key: str,
        timer_period: float | None = None,
        run_timers: bool = True,
    ) -> None:
        # get_functions() may be called only once per FunctionApp instance.
        self.functions: list[Function] = app.get_functions()
        self.function_key = function_key
        self.master_key = master_key
        self.timer_period = timer_period
        self.run_timers = run_timers
        self.timer_runs: dict[str, int] = {}
        self._busy: dict[str, asyncio.Lock] = {}

    # ---- HTTP functions -------------------------------------------------
    def _authorized(self, request: Request, level: str) -> bool:
        level = level.upper()
        if level == "ANONYMOUS":
            return True
        key = request.headers.get("x-functions-key") or request.query_params.get("code")
        if level == "ADMIN":
            return key == self.master_key
        return key in (self.function_key, self.master_key)

    def http_endpoint(self, fn: Function) -> Callable[[Request], Any]:
        trigger = _trigger(fn)
        level = str(getattr(trigger, "auth_level", "FUNCTION") or "FUNCTION")
        level = level.split(".")[-1]
        user_fn = fn.get_user_function()

        async def endpoint(request: Request) -> Response:
            if not self._authorized(request, level):
                return Response(status_code=401)
            body = await request.body()
            req = func.HttpRequest(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                params=dict(request.query_params),
                route_params=dict(request.path_params),
                body=body,
            )
            try:
                result = await _call(user_fn, req)
            except Exception:
                # The real host answers 500 with no detail and logs the exception.
                log.exception("function %s failed", fn.get_function_name())
                return Response(status_code=500)
            return _to_response(result)

        return endpoint

    # ---- timer functions ------------------------------------------------
    def timer_functions(self) -> dict[str, Function]:
        return {
            str(f.get_function_name()): f
            for f in self.functions
            if _trigger(f).get_binding_name() == "timerTrigger"
        }

    async def run_timer(self, name: str, *, past_due: bool = False) -> None:
        fn = self.timer_functions()[name]
        lock = self._busy.setdefault(name, asyncio.Lock())
        # One outstanding invocation per timer, like the host's singleton lock.
        async with lock:
            started = time.monotonic()
            request = TimerRequest(past_due=past_due, schedule_status={}, schedule={})
            try:
                await _call(fn.get_user_function(), request)
                outcome = "succeeded"
            except Exception:
                log.exception("timer %s failed", name)
                outcome = "failed"
            self.timer_runs[name] = self.timer_runs.get(name, 0) + 1
            print(
                f"[functions] {name} {outcome} in {time.monotonic() - started:.2f}s",
                flush=True,
            )

    async def _timer_loop(self, name: str, fn: Function) -> None:
        schedule = Schedule(_resolve_schedule(str(_trigger(fn).schedule)))
        while True:
            if self.timer_period:
                await asyncio.sleep(self.timer_period)
            else:
                now = datetime.now(UTC)
                await asyncio.sleep((schedule.next_after(now) - now).total_seconds())
            await self.run_timer(name)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        tasks = []
        if self.run_timers:
            tasks = [
                asyncio.create_task(self._timer_loop(name, fn))
                for name, fn in self.timer_functions().items()
            ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def admin_run(self, request: Request) -> Response:
        if (request.headers.get("x-functions-key") or request.query_params.get("code")) != (
            self.master_key
        ):
            return Response(status_code=401)
        name = request.path_params["name"]
        if name not in self.timer_functions():
            return Response(status_code=404)
        if request.query_params.get("wait") == "true":
            await self.run_timer(name)
            return JSONResponse({"name": name, "runs": self.timer_runs.get(name, 0)})
        _ = asyncio.get_running_loop().create_task(self.run_timer(name))
        return Response(status_code=202)

    async def status(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "state": "Running",
                "functions": [f.get_function_name() for f in self.functions],
                "timerRuns": self.timer_runs,
            }
        )

    def asgi(self) -> Starlette:
        routes = [
            Route("/admin/host/status", self.status, methods=["GET"]),
            Route("/admin/functions/{name}", self.admin_run, methods=["POST"]),
        ]
        for fn in self.functions:
            if fn.is_http_function():
                trigger = _trigger(fn)
                route = str(getattr(trigger, "route", None) or fn.get_function_name())
                methods = [str(m).split(".")[-1].upper() for m in (trigger.methods or [])]
                routes.append(
                    Route(f"/api/{route}", self.http_endpoint(fn), methods=methods or None)
                )
        app = Starlette(routes=routes, lifespan=self.lifespan)
        app.state.host = self
        return app


def _trigger(fn: Function) -> Any:
    # Typed loosely on purpose: each trigger class carries different attributes.
    return fn.get_trigger()


async def _call(user_fn: Callable[..., Any], arg: Any) -> Any:
    if inspect.iscoroutinefunction(user_fn):
        return await user_fn(arg)
    return await run_in_threadpool(user_fn, arg)


def _to_response(result: Any) -> Response:
    if result is None:
        return Response(status_code=204)
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
        media = result.mimetype
        if media and result.charset and media.startswith(("text/", "application/json")):
            media = f"{media}; charset={result.charset}"
        return Response(
            result.get_body(), status_code=result.status_code, headers=headers, media_type=media
        )
    return Response(str(result), media_type="text/plain")


def create_host(
    app: func.FunctionApp | None = None,
    *,
    function_key: str | None = None,
    master_key: str | None = None,
    timer_period: float | None = None,
    run_timers: bool = True,
) -> Starlette:
    """Build the ASGI host; `app` defaults to the project's `function_app.app`."""
    if app is None:
        import function_app

        app = function_app.app
    return FunctionsHost(
        app,
        function_key=function_key or os.environ.get("FUNCTIONS_LOCAL_KEY", LOCAL_FUNCTION_KEY),
        master_key=master_key or os.environ.get("FUNCTIONS_LOCAL_MASTER_KEY", LOCAL_MASTER_KEY),
        timer_period=timer_period,
        run_timers=run_timers,
    ).asgi()
