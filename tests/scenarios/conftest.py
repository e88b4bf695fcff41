from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from sync_core import activitylog
from tests.scenarios.world import World, open_world


@pytest.fixture
def world(azurite: str, tmp_path: Path) -> Iterator[World]:
    # Each world is a new Marketo instance, and its URL may reuse an earlier one's port.
    activitylog.forget()
    with ExitStack() as stack:
        yield open_world(stack, azurite, tmp_path)
