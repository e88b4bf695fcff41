from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.scenarios.world import World, open_world


@pytest.fixture
def world(azurite: str, tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield open_world(stack, azurite, tmp_path)
