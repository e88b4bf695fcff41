"""Bulk Lead Extract: jobs (Created → Queued → Processing → Completed/Failed/Cancelled),
CSV/TSV/SSV files with Range support, 2-processing/10-queued caps and the daily
export-size quota (1029).

Job states advance lazily whenever a bulk endpoint is touched, after
`bulk_processing_s`; the file is a snapshot taken when processing starts, so clients
see the same "status says Completed, fetch the file" flow as in production. These are
the endpoints; the jobs and files are kept by `BulkJobs` (bulk_jobs.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from starlette.responses import Response

from emulators.marketo.bulk_jobs import FORMATS
from emulators.marketo.envelope import ApiError, plain, success
from emulators.marketo.fields import iso, parse_datetime
from emulators.marketo.state import Call


def _visible(call: Call) -> dict[str, Any]:
    return call.emu.bulk.visible(call.path["exportId"], call.user.client_id)


def public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_") and v is not None}


async def create(call: Call) -> dict[str, Any]:
    emu = call.emu
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError("609", "Invalid JSON")
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields:
        raise ApiError("701", "'fields' cannot be blank")
    for f in fields:
        if f not in emu.schema.by_name:
            raise ApiError("1003", f"Invalid field '{f}'")
    fmt = str(body.get("format") or "CSV").upper()
    if fmt not in FORMATS:
        raise ApiError("1003", f"Invalid format '{fmt}'")
    flt = body.get("filter")
    if not isinstance(flt, dict) or len(flt) != 1:
        raise ApiError("1003", "Exactly one filter is required")
    ((fname, fval),) = flt.items()
    if fname in ("staticListName", "staticListId", "smartListName", "smartListId"):
        raise ApiError("1035", f"Unsupported filter type for this subscription: {fname}")
    if fname not in ("createdAt", "updatedAt") or not isinstance(fval, dict):
        raise ApiError("1003", f"Invalid filter '{fname}'")
    start = parse_datetime(str(fval.get("startAt", "")))
    end = parse_datetime(str(fval.get("endAt", "")))
    if start is None or end is None:
        raise ApiError("1003", "startAt and endAt must be ISO 8601 datetimes")
    if end < start or end - start > timedelta(days=emu.config.bulk_max_days):
        raise ApiError("1003", f"Date range must not exceed {emu.config.bulk_max_days} days")
    now = emu.now()
    job: dict[str, Any] = {
        "exportId": str(uuid.uuid4()),
        "format": fmt,
        "status": "Created",
        "createdAt": iso(now),
        "_owner": call.user.client_id,
        "_fields": list(fields),
        "_headers": dict(body.get("columnHeaderNames") or {}),
        "_filter": (fname, int(start.timestamp()), int(end.timestamp())),
        "_queued": None,
        "_started": None,
    }
    emu.bulk.jobs[job["exportId"]] = job
    return success(call.rid, [public(job)])


async def enqueue(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    job = _visible(call)
    if job["status"] != "Created":
        raise ApiError("1029", "Job already queued")
    queued = sum(1 for j in bulk.jobs.values() if j["status"] in ("Queued", "Processing"))
    if queued >= call.emu.config.bulk_max_queued:
        raise ApiError("1029", "Too many jobs in queue")
    if bulk.bytes_today >= call.emu.config.bulk_daily_quota_bytes:
        raise ApiError("1029", bulk.quota_message())
    now = call.emu.now()
    job["status"] = "Queued"
    job["_queued"] = now
    job["queuedAt"] = iso(now)
    return success(call.rid, [public(job)])


async def status(call: Call) -> dict[str, Any]:
    call.emu.bulk.advance()
    return success(call.rid, [public(_visible(call))])


async def cancel(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    job = _visible(call)
    if job["status"] in ("Created", "Queued", "Processing"):
        job["status"] = "Cancelled"
        job.pop("_snapshot", None)
    return success(call.rid, [public(job)])


async def list_jobs(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    wanted = {s.lower() for s in call.list_param("status")}
    jobs = [
        public(j)
        for j in bulk.jobs.values()
        if j["_owner"] == call.user.client_id and (not wanted or j["status"].lower() in wanted)
    ]
    return success(call.rid, jobs)


async def file(call: Call) -> Response:
    bulk = call.emu.bulk
    bulk.advance()
    job = bulk.jobs.get(call.path["exportId"])
    if job is None or job["_owner"] != call.user.client_id or job["status"] != "Completed":
        return plain(404, "Export file not found")
    data = bulk.files[job["exportId"]]
    call.records = job.get("numberOfRecords", 0)
    rng = call.headers.get("range", "")
    if rng.startswith("bytes="):
        try:
            a, b = rng[6:].split("-", 1)
            if a == "":
                first, last = max(0, len(data) - int(b)), len(data) - 1
            else:
                first, last = int(a), (int(b) if b else len(data) - 1)
        except ValueError:
            return plain(416, "Invalid Range")
        last = min(last, len(data) - 1)
        if first > last:
            return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
        return Response(
            data[first : last + 1],
            status_code=206,
            media_type="text/csv",
            headers={
                "Accept-Ranges": "bytes",
                "Content-Range": f"bytes {first}-{last}/{len(data)}",
            },
        )
    return Response(data, media_type="text/csv", headers={"Accept-Ranges": "bytes"})
