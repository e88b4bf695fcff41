"""Property-based fuzzing of the webhook through the functions host: whatever the body
and headers, the answer is never a 5xx, and a refused call (400/401) makes no API call
and writes nothing. The only person in the world is already synced, so no valid body
may write either: any write at all is a bug."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.realtime.support import SECRET, Webhook
from tests.scenarios.world import World

# Headers the transport or the host interpret themselves; fuzzing them tests httpx.
RESERVED = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "expect", "content-encoding", "x-functions-key",
}  # fmt: skip

scalars = st.one_of(
    st.sampled_from([1, "1", 2, 424242]),  # the synced person, and people who do not exist
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=0, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1", " 1 ", "1.0", "1.5", "0x1", "+1", "1e0", "\u0661", "lead", "contact",
                     "LEAD", "", "{00000000-0000-4000-8000-00000000a002}", "x@y.z", "@",
                     "{{lead.Id}}", "null"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
objects = st.fixed_dictionaries(
    {},
    optional={"leadId": values, "syncAs": values, "assignTo": values, "LEADID": values},
).flatmap(
    lambda d: st.dictionaries(st.text(max_size=8), values, max_size=2).map(lambda extra: extra | d)
)


def _template(parts: tuple[str, str, str]) -> bytes:
    lead, sync_as, assign = parts
    return f'{{"leadId": {lead}, "syncAs": {sync_as}, "assignTo": {assign}}}'.encode()


token = st.sampled_from(['"lead"', '""lead""', "lead", "", '""', '""""', "null", '"contact"',
                         '"x@y.z"', 'x@y.z', '""x@y.z""', '"a,b"', "a b", "{", '"'])  # fmt: skip
lead_token = st.sampled_from(["1", '"1"', "", "null", '""1""', "1.0", "-1", "2", "a"])
templated = st.tuples(lead_token, token, token).map(_template)

plausible = st.fixed_dictionaries(
    {"leadId": st.sampled_from([1, "1", " 1 ", 1.0, "1.0", 424242, "424242"])},
    optional={
        "syncAs": st.sampled_from([None, "", "lead", "contact", "Lead", " CONTACT "]),
        "assignTo": st.sampled_from(
            [
                None,
                "",
                "00000000-0000-4000-8000-00000000a002",
                "x@y.z",
                "{00000000-0000-4000-8000-00000000a001}",
            ]
        ),
    },
)

bodies = st.one_of(
    plausible.map(lambda d: json.dumps(d).encode()),
    objects.map(lambda d: json.dumps(d).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    templated,
    st.binary(max_size=120),
    st.text(max_size=80).map(str.encode),
)

header_names = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=20).filter(
    lambda n: n.lower() not in RESERVED
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
wrong_secrets = st.one_of(
    st.none(),
    st.sampled_from(["", SECRET.upper(), SECRET[:-1], SECRET + "x", f"{SECRET}\tx"]),
    header_values,
)
# Mostly the right secret, so most examples get past the door and test the parser.
secrets = st.tuples(st.integers(0, 9), wrong_secrets).map(lambda t: SECRET if t[0] < 7 else t[1])


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies,
    secret=secrets,
    headers=st.dictionaries(header_names, header_values, max_size=4),
)
def test_never_a_5xx_and_never_a_write_on_invalid_input(
    synced_world: tuple[World, Webhook, dict[str, Any]],
    body: bytes,
    secret: str | None,
    headers: dict[str, str],
):
    world, hook, synced = synced_world
    headers = {k: v for k, v in headers.items() if k.lower() != "x-sync-secret"}
    before = counts(world)
    r = hook.call(raw=body, secret=secret, headers=headers)
    after = counts(world)
    assert r.status_code < 500, (r.status_code, r.text)
    assert r.status_code in (200, 400, 401, 404), (r.status_code, r.text)
    reply = r.json()
    if r.status_code == 200:
        assert reply == synced, reply  # the one person there is, already synced
    if r.status_code in (400, 401):
        assert after == before, "a refused call reached an API"
    if r.status_code == 400:
        assert reply["field"] in ("body", "leadId", "syncAs", "assignTo"), reply
    assert after["writes"] == before["writes"], "a write happened"


def counts(world: World) -> dict[str, Any]:
    m = world.marketo_admin("GET", "stats")
    d = world.dynamics_admin("GET", "stats")
    writes = snapshot_writes(m, d)
    calls = (m["totals"]["calls"], sum(v["calls"] for k, v in d.items() if k != "POST token"))
    return {"calls": calls, "writes": writes}


def snapshot_writes(m: dict[str, Any], d: dict[str, Any]) -> tuple[int, ...]:
    return (
        m["endpoints"].get("POST /rest/v1/leads.json", {}).get("calls", 0),
        m["activities"],
        m["people"],
        sum(v["calls"] for k, v in d.items() if k.split(" ")[0] != "GET" and k != "POST token"),
    )
