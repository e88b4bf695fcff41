"""§2.10 Bulk lead extract: create/enqueue/status/file, Range, 31-day rule, quota."""

from __future__ import annotations

import csv
import hashlib
import io

import httpx

from emulators.marketo.fields import iso
from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate


def _window(api: Api, http: httpx.Client) -> dict:
    now = http.get("/_emulator/clock").json()["now"]
    return {"createdAt": {"startAt": "2000-01-01T00:00:00Z", "endAt": now}}


def test_bulk_extract_flow(http: httpx.Client, api: Api, marketer: Api) -> None:
    api.sync([{"email": "b1@example.com", "firstName": "Bea"},
              {"email": "b2@example.com", "company": "Contoso, Ltd"}])
    now = http.get("/_emulator/clock").json()["now"]
    too_long = api.post("/bulk/v1/leads/export/create.json", {
        "fields": ["id"], "filter": {"createdAt": {"startAt": "2000-01-01T00:00:00Z",
                                                   "endAt": now}}})
    assert too_long["errors"][0]["code"] == "1003"
    start = iso(__import__("time").time() - 86400)
    created = api.post("/bulk/v1/leads/export/create.json", {
        "fields": ["id", "email", "firstName", "company"], "format": "CSV",
        "columnHeaderNames": {"id": "Marketo Id"},
        "filter": {"createdAt": {"startAt": start, "endAt": now}}})
    validate(created, "ResponseOfExportResponse")
    job = created["result"][0]
    assert job["status"] == "Created"
    export = job["exportId"]
    # Jobs are private to the API user who created them.
    assert marketer.get(f"/bulk/v1/leads/export/{export}/status.json")["success"] is False
    assert api.raw("GET", f"/bulk/v1/leads/export/{export}/file.json").status_code == 404
    queued = api.post(f"/bulk/v1/leads/export/{export}/enqueue.json")
    assert queued["result"][0]["status"] in ("Queued", "Processing", "Completed")
    again = api.post(f"/bulk/v1/leads/export/{export}/enqueue.json")
    assert again["errors"][0]["code"] == "1029"
    status = api.get(f"/bulk/v1/leads/export/{export}/status.json")
    validate(status, "ResponseOfExportResponse")
    st = status["result"][0]
    assert st["status"] == "Completed" and st["numberOfRecords"] == 2
    r = api.raw("GET", f"/bulk/v1/leads/export/{export}/file.json")
    assert r.status_code == 200
    assert st["fileChecksum"] == "sha256:" + hashlib.sha256(r.content).hexdigest()
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["Marketo Id", "email", "firstName", "company"]
    assert rows[1][1:] == ["b1@example.com", "Bea", "null"]
    assert rows[2][3] == "Contoso, Ltd"
    part = api.raw("GET", f"/bulk/v1/leads/export/{export}/file.json",
                   headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == r.content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(r.content)}"
    listed = api.get("/bulk/v1/leads/export.json", status="Completed")
    assert [j["exportId"] for j in listed["result"]] == [export]


def test_bulk_quota_and_queue_limits(local: AsgiHttp, lapi: Api) -> None:
    emu = local.app.state.emulator  # type: ignore[attr-defined]
    lapi.sync([{"email": f"q{i}@example.com"} for i in range(20)])
    flt = {"updatedAt": {"startAt": iso(emu.now() - 3600), "endAt": iso(emu.now() + 60)}}
    emu.config.bulk_daily_quota_bytes = 50
    first = lapi.post("/bulk/v1/leads/export/create.json", {"fields": ["email"], "filter": flt})
    export = first["result"][0]["exportId"]
    lapi.post(f"/bulk/v1/leads/export/{export}/enqueue.json")
    st = lapi.get(f"/bulk/v1/leads/export/{export}/status.json")["result"][0]
    assert st["status"] == "Failed" and "Export daily quota" in st["errorMsg"]
    emu.config.bulk_daily_quota_bytes = 10_000
    emu.config.bulk_processing_s = 1000  # jobs stay queued/processing
    emu.config.bulk_max_queued = 1
    ids = [lapi.post("/bulk/v1/leads/export/create.json",
                     {"fields": ["email"], "filter": flt})["result"][0]["exportId"]
           for _ in range(2)]
    assert lapi.post(f"/bulk/v1/leads/export/{ids[0]}/enqueue.json")["success"] is True
    full = lapi.post(f"/bulk/v1/leads/export/{ids[1]}/enqueue.json")
    assert full["errors"][0] == {"code": "1029", "message": "Too many jobs in queue"}
    cancelled = lapi.post(f"/bulk/v1/leads/export/{ids[0]}/cancel.json")
    assert cancelled["result"][0]["status"] == "Cancelled"
    unsupported = lapi.post("/bulk/v1/leads/export/create.json",
                            {"fields": ["email"], "filter": {"smartListId": 1}})
    assert unsupported["errors"][0]["code"] == "1035"
