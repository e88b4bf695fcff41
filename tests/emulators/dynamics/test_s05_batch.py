"""§5 $batch: multipart parsing, change sets (atomic), Content-ID refs, error modes, 1000 cap."""

from __future__ import annotations

import json
import re

import httpx

from tests.emulators.dynamics.conftest import Dv

B = "batch_abc"


def _req(method: str, url: str, body: dict | None = None, cid: str | None = None,
         headers: dict[str, str] | None = None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if cid:
        lines.append(f"Content-ID: {cid}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    if body is not None:
        lines.append("Content-Type: application/json; type=entry")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    lines += ["", json.dumps(body) if body is not None else ""]
    return "\r\n".join(lines)


def _batch(parts: list[str]) -> str:
    return "".join(f"--{B}\r\n{p}\r\n" for p in parts) + f"--{B}--\r\n"


def _changeset(name: str, parts: list[str]) -> str:
    inner = "".join(f"--{name}\r\n{p}\r\n" for p in parts) + f"--{name}--"
    return f'Content-Type: multipart/mixed; boundary="{name}"\r\n\r\n{inner}'


def _send(dv: Dv, body: str, prefer: str | None = None) -> httpx.Response:
    headers = {"Content-Type": f'multipart/mixed; boundary="{B}"'}
    if prefer:
        headers["Prefer"] = prefer
    return dv.post("$batch", content=body.encode(), headers=headers)


def _statuses(r: httpx.Response) -> list[int]:
    return [int(s) for s in re.findall(r"HTTP/1\.1 (\d{3})", r.text)]


def test_batch_with_get_and_changeset_content_id_reference(dv: Dv) -> None:
    api = "/api/data/v9.2/"
    cs = _changeset("changeset_1", [
        _req("POST", api + "contacts", {"lastname": "Batch"}, cid="1"),
        _req("PATCH", "$1", {"jobtitle": "Ref"}, cid="2"),
        _req("POST", api + "leads", {"lastname": "L2"}, cid="3"),
    ])
    r = _send(dv, _batch([cs, _req("GET", dv.base + api + "contacts?$select=jobtitle")]))
    assert r.status_code == 200
    boundary = re.search(r"boundary=(batchresponse_[\w-]+)", r.headers["Content-Type"])
    assert boundary
    assert "changesetresponse_" in r.text and "Content-ID: 1" in r.text
    assert _statuses(r) == [204, 204, 204, 200]
    assert "OData-EntityId: " + dv.base in r.text
    assert '"jobtitle":"Ref"' in r.text


def test_changeset_rolls_back_on_failure(dv: Dv) -> None:
    cs = _changeset("changeset_2", [
        _req("POST", "/api/data/v9.2/contacts", {"lastname": "Kept?"}, cid="1"),
        _req("POST", "/api/data/v9.2/contacts", {"lastname": "x" * 51}, cid="2"),
    ])
    r = _send(dv, _batch([cs]))
    assert r.status_code == 400
    assert "0x80044331" in r.text
    assert dv.get("contacts").json()["value"] == []


def test_stop_at_first_error_vs_continue_on_error(dv: Dv) -> None:
    api = "/api/data/v9.2/"
    parts = [_req("POST", api + "contacts", {"lastname": "ok1"}),
             _req("PATCH", api + "contacts(00000000-0000-0000-0000-000000000001)",
                  {"lastname": "missing"}, headers={"If-Match": "*"}),
             _req("POST", api + "contacts", {"lastname": "ok2"})]
    r = _send(dv, _batch(parts))
    assert r.status_code == 404 and _statuses(r) == [404]
    assert len(dv.get("contacts").json()["value"]) == 1  # earlier success not rolled back
    r = _send(dv, _batch(parts), prefer="odata.continue-on-error")
    assert r.status_code == 200 and _statuses(r) == [204, 404, 204]
    assert len(dv.get("contacts").json()["value"]) == 3


def test_undeclared_content_id_reference(dv: Dv) -> None:
    cs = _changeset("changeset_3", [_req("PATCH", "$9", {"lastname": "x"}, cid="1")])
    r = _send(dv, _batch([cs]))
    assert r.status_code == 400
    assert "Content-ID Reference: '$9' does not exist in the batch context." in r.text


def test_batch_operation_cap(dv: Dv) -> None:
    parts = [_req("GET", "/api/data/v9.2/WhoAmI")] * 1001
    r = _send(dv, _batch(parts))
    assert r.status_code == 400
    assert "maximum number of '1000'" in r.json()["error"]["message"]


def test_batch_counts_as_one_request_for_limits(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/limits", json={"max_requests": 2})
    parts = [_req("GET", "/api/data/v9.2/WhoAmI")] * 5
    assert _send(dv, _batch(parts)).status_code == 200
    assert _send(dv, _batch(parts)).status_code == 200
    assert _send(dv, _batch(parts)).status_code == 429


def test_a_get_inside_a_batch_may_carry_a_url_up_to_64_kb(dv: Dv) -> None:
    made = dv.post("contacts", json={"lastname": "Inner"}).headers["OData-EntityId"]
    cid = made.rsplit("(", 1)[1].rstrip(")")
    ids = [cid] + [f"00000000-0000-4000-8000-{i:012d}" for i in range(1000)]
    cond = "%20or%20".join(f"contactid%20eq%20{x}" for x in ids)
    url = f"/api/data/v9.2/contacts?$select=lastname&$filter={cond}"
    assert 40_000 < len(url) <= 65_536  # longer than a plain request may be
    longer = url + "%20or%20contactid%20eq%2000000000-0000-4000-8000-999999999999" * 200
    r = _send(dv, _batch([_req("GET", url), _req("GET", longer)]), "odata.continue-on-error")
    assert r.status_code == 200
    assert _statuses(r) == [200, 414]
    assert '"lastname": "Inner"' in r.text or '"lastname":"Inner"' in r.text
