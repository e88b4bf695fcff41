"""Every public method of the wrapped clients and store is classified for the dry run:
a write method added later must be captured by `plan`, never passed through."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from sync_core.admin.dryrun_wrappers import (
    Capture,
    DryRunDataverse,
    DryRunMarketo,
    DryRunStore,
)
from sync_core.dataverse import DataverseClient
from sync_core.errors import DryRunRefused
from sync_core.marketo import MarketoClient
from sync_core.state import StateStore


def public_methods(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


@pytest.mark.parametrize(
    ("wrapper", "wrapped"),
    [(DryRunMarketo, MarketoClient), (DryRunDataverse, DataverseClient), (DryRunStore, StateStore)],
)
def test_every_public_method_is_a_read_or_a_write(wrapper, wrapped):
    methods = public_methods(wrapped) - {"from_connection_string", "from_account_url"}
    assert methods - (wrapper.READS | wrapper.WRITES) == set()
    # Writes are implemented by the wrapper itself, never forwarded.
    for name in wrapper.WRITES:
        assert name in wrapper.__dict__, name


def test_unclassified_calls_are_refused_and_writes_captured():
    class Inner:
        base_url = "x"

        async def call(self, method, path, **kw):
            return {"ok": True}

    capture = Capture()
    mk = DryRunMarketo(Inner(), capture)  # type: ignore[arg-type]
    with pytest.raises(DryRunRefused):
        _ = mk.delete_everything
    # A generic write is captured and answered as done, never sent.
    done = asyncio.run(mk.call("POST", "/rest/v1/activities/external/type.json"))
    assert done["success"] is True and done["requestId"] == "dry-run"
    assert capture.other_writes == [
        {"system": "marketo", "method": "POST", "path": "/rest/v1/activities/external/type.json"}
    ]
    got = asyncio.run(mk.call("POST", "/rest/v1/leads.json", params={"_method": "GET"}))
    assert got == {"ok": True}
    asyncio.run(mk.merge(5, [6, 7]))
    assert capture.merges == [{"winner": 5, "losers": [6, 7]}]
    with pytest.raises(DryRunRefused):
        mk.something = 1


def test_a_create_only_by_email_skips_the_emails_people_have_and_captures_the_rest():
    asked: list[tuple[str, list[str]]] = []

    class Inner:
        async def get_leads(self, filter_type, values, fields):
            asked.append((filter_type, list(values)))
            return [{"id": 7, "email": "Known@Example.com"}]

    capture = Capture()
    mk = DryRunMarketo(Inner(), capture)  # type: ignore[arg-type]
    records = [{"email": "known@example.com", "dynamicsId": "a"},
               {"email": "new@example.com", "dynamicsId": "b"}]  # fmt: skip
    got = asyncio.run(mk.sync_leads("createOnly", records, "email"))
    assert asked == [("email", ["known@example.com", "new@example.com"])]
    exists = {"code": "1005", "message": "Lead already exists"}
    assert got[0] == {"status": "skipped", "reasons": [exists]}
    assert got[1]["status"] == "created" and got[1]["id"] < 0
    assert [c["dynamicsId"] for c in capture.marketo_creates] == ["b"]
    assert capture.planned == {("create", "b")}
    # createDuplicate reads nothing and captures every record.
    got = asyncio.run(mk.sync_leads("createDuplicate", records, "email"))
    assert [r["status"] for r in got] == ["created", "created"] and len(asked) == 1
