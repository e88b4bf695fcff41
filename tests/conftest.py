"""Session-wide fixtures: one Azurite for the whole run, stopped even on failure."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from emulators.azurite import running_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Connection string of a running Azurite table service (env AZURITE_CONNECTION reuses one)."""
    existing = os.environ.get("AZURITE_CONNECTION")
    if existing:
        yield existing
        return
    with running_azurite() as conn:
        yield conn
