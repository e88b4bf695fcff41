"""An independent, well-used client (PyPI `marketorestpython`) against the emulator over
real HTTP: token handling, `_method=GET` lead queries, Sync Leads, change feeds,
custom activities and 606 retry. Skipped when the package is not installed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

mrp = pytest.importorskip("marketorestpython.client")


@pytest.fixture
def mc(server: tuple[str, Any], http: httpx.Client) -> Any:
    url, _app = server
    client = mrp.MarketoClient("emulator", "sync-app", "sync-app-secret", max_retry_time=30)
    client.host = url  # the client builds https://<munchkin>.mktorest.com otherwise
    return client


def test_client_roundtrip(mc: Any, http: httpx.Client) -> None:
    token = mc.get_paging_token(sinceDatetime="2000-01-01T00:00:00Z")
    res = mc.create_update_leads(
        leads=[{"email": "Client@Example.com", "firstName": "Cli", "dynamicsId": "g-1"}],
        action="createOnly", lookupField="email")
    assert res[0]["status"] == "created"
    lead_id = res[0]["id"]
    found = mc.get_multiple_leads_by_filter_type("email", "client@example.com",
                                                 fields=["firstName", "dynamicsId"])
    assert found == [{"id": lead_id, "firstName": "Cli", "dynamicsId": "g-1"}]
    assert mc.get_lead_by_id(lead_id, fields=["email"])[0]["email"] == "Client@Example.com"
    mc.create_update_leads(leads=[{"id": lead_id, "firstName": "Changed"}],
                           action="updateOnly", lookupField="id")
    changes = mc.get_lead_changes(fields=["firstName"], nextPageToken=token)
    assert [c["activityTypeId"] for c in changes] == [12, 13]
    assert any(t["id"] == 13 for t in mc.get_activity_types())
    assert mc.describe2()[0]["name"] == "API Lead"
    mc.create_custom_activity_type("syncErr", "Sync Error", "Got sync error", "Had sync error",
                                   "entity", "Entity")
    type_id = mc.approve_custom_activity_type("syncErr")[0]["id"]
    added = mc.add_custom_activities([{"leadId": lead_id, "activityTypeId": type_id,
                                       "activityDate": "2024-01-01T00:00:00Z",
                                       "primaryAttributeValue": "lead", "attributes": []}])
    assert added[0]["status"] == "added"
    mc.delete_lead([lead_id])
    deleted = mc.get_deleted_leads(nextPageToken=token)
    assert [d["leadId"] for d in deleted] == [lead_id]


def test_client_gets_fresh_token_after_expiry(mc: Any, http: httpx.Client) -> None:
    assert mc.describe2()[0]["name"] == "API Lead"
    old = mc.token
    http.post("/_emulator/tokens/expire")
    mc.valid_until = None  # as when its own countdown has run out
    assert mc.describe2()[0]["name"] == "API Lead"
    assert mc.token != old
    # Note: marketorestpython's backoff retry (606/615/...) re-sends the request without the
    # token it popped from `args` on the first try, so against real Marketo (and here) a
    # retried call fails 601. The sync should not copy that pattern.
