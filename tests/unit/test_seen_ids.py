"""The ids a full Dynamics re-read saw (sync_core.snapshot.SeenIds): membership across
pages, in any case, and pages added after a look-up still count."""

from __future__ import annotations

import uuid

from sync_core.snapshot import SeenIds


def test_ids_seen_on_any_page_are_found_and_others_are_not():
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(12_000)]
    seen = SeenIds()
    for lo in range(0, 10_000, 5_000):  # two pages
        seen.add(ids[lo : lo + 5_000])
    assert all(i in seen for i in ids[:10_000:97])
    assert not any(i in seen for i in ids[10_000::13])
    assert ids[42].upper() in seen  # Dataverse ids compare without case
    seen.add(ids[10_000:])  # a page read after a look-up
    assert ids[11_999] in seen and ids[0] in seen


def test_nothing_seen_finds_nothing():
    assert str(uuid.uuid4()) not in SeenIds()
