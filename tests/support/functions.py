"""The project's FunctionApp, freshly loaded, for tests that serve it through the local
functions host."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import azure.functions as func

ROOT = Path(__file__).resolve().parents[2]


def fresh_function_app(name: str = "function_app_for_tests") -> func.FunctionApp:
    """`function_app.app` from a private copy of the module: a FunctionApp hands out
    its functions only once, and tests/functions already asked the shared one."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: func.FunctionApp = module.app
    return app
