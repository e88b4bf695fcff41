"""The async state store for synchronous test code: each call runs to completion.

Scenario tests are plain functions that look at what a cycle left behind; this lets
them read `world.store().list_errors()` as a value. An async iterator (`iter_links`)
comes back as a list.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def _collect(items: Any) -> list[Any]:
    return [x async for x in items]


class BlockingStore:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            if inspect.isasyncgen(result):
                return asyncio.run(_collect(result))
            if inspect.iscoroutine(result):
                return asyncio.run(result)
            return result

        return call


def run_async(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """A coroutine test function as a plain one (pytest sees the same arguments)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run
