"""The function metadata the Azure Functions host indexes from function_app.py."""

from __future__ import annotations

import json
from functools import lru_cache

import function_app


@lru_cache(maxsize=1)
def functions() -> dict[str, dict]:
    # get_functions() may be called once per FunctionApp instance.
    return {
        f.get_function_name(): json.loads(f.get_function_json())
        for f in function_app.app.get_functions()
    }


def test_timer_reads_its_schedule_from_the_app_setting_without_startup_run():
    (binding,) = functions()["sync_timer"]["bindings"]
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "%SYNC_SCHEDULE%"
    assert binding["runOnStartup"] is False
    assert binding["useMonitor"] is True


def test_sync_person_is_a_function_level_post_route():
    bindings = functions()["sync_person"]["bindings"]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["route"] == "sync-person"
    assert trigger["methods"] == ["POST"]
    assert trigger["authLevel"] == "FUNCTION"
    assert any(b["type"] == "http" and b["direction"] == "OUT" for b in bindings)


def test_status_and_dashboard_are_function_level_get_routes():
    for name, route in (("sync_status", "status"), ("sync_dashboard", "dashboard")):
        trigger = next(b for b in functions()[name]["bindings"] if b["type"] == "httpTrigger")
        assert (trigger["route"], trigger["methods"]) == (route, ["GET"])
        assert trigger["authLevel"] == "FUNCTION"


def test_only_the_four_functions_are_registered():
    assert set(functions()) == {"sync_timer", "sync_person", "sync_status", "sync_dashboard"}


def test_sync_core_never_imports_azure_functions():
    import ast
    import pathlib

    for path in pathlib.Path("sync_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.startswith("azure.functions") for n in names), path
