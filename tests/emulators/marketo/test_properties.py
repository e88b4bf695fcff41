"""Property checks (hypothesis) on Sync Leads: email lookups ignore case, repeated
upserts are idempotent (one person, no extra change activities)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.marketo import MarketoConfig, create_app
from tests.emulators.marketo.support import Api, AsgiHttp

local_part = st.text(alphabet="abcdefghijKLMNOPqrstuvwxyz0123456789._-", min_size=1,
                     max_size=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(local=local_part, first=st.text(min_size=1, max_size=30).filter(lambda s: s.strip()))
def test_upsert_is_case_insensitive_and_idempotent(local: str, first: str) -> None:
    app = create_app(MarketoConfig().limits_off())
    http = AsgiHttp(app)
    try:
        api = Api(http)
        email = f"{local}@Example.com"
        a = api.sync([{"email": email, "firstName": first}])["result"][0]
        b = api.sync([{"email": email.swapcase(), "firstName": first}])["result"][0]
        assert a["status"] == "created" and b == {"id": a["id"], "status": "updated"}
        log = app.state.emulator.log.for_lead(a["id"])
        # New Lead + the email's case change; the unchanged firstName logs nothing.
        assert [x.type_id for x in log] == [12, 13]
        found = api.get("/rest/v1/leads.json", filterType="email",
                        filterValues=email.upper(), fields="firstName")["result"]
        assert found == [{"id": a["id"], "firstName": first}]
    finally:
        http.close()
