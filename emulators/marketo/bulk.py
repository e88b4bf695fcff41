"""Bulk Lead Extract: jobs (Created → Queued → Processing → Completed/Failed/Cancelled),
CSV/TSV/SSV files with Range support, 2-processing/10-queued caps and the daily
export-size quota (1029).

Job states advance lazily whenever a bulk endpoint is touched, after
`bulk_processing_s`; the file is a snapshot taken when processing starts, so clients
see the same "status says Completed, fetch the file" flow as in production.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from emulators.marketo.envelope import ApiError, plain, success
from emulators.marketo.fields import iso, parse_datetime
from emulators.marketo.limits import next_quota_reset
from emulators.marketo.store import TOUCHED

if TYPE_CHECKING:
    from emulators.marketo.state import Call, Emulator

FORMATS = {"CSV": ",", "TSV": "\t", "SSV": " "}


class BulkJobs:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.jobs: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.bytes_today = 0
        self.quota_resets_at = 0.0

    def _roll(self, now: float) -> None:
        if now >= self.quota_resets_at:
            self.bytes_today = 0
            self.quota_resets_at = next_quota_reset(now)

    def advance(self) -> None:
        """Move jobs along: queued → processing (≤ N at once) → completed."""
        now = self.emu.now()
        cfg = self.emu.config
        self._roll(now)
        takes = cfg.scaled(cfg.bulk_processing_s)
        for job in self.jobs.values():
            if job["status"] == "Processing" and now - job["_started"] >= takes:
                self._complete(job, now)
        processing = sum(1 for j in self.jobs.values() if j["status"] == "Processing")
        for job in sorted(self.jobs.values(), key=lambda j: j["_queued"] or 0):
            if job["status"] != "Queued" or processing >= cfg.bulk_max_processing:
                continue
            if now - job["_queued"] < takes / 2:
                continue
            job["status"] = "Processing"
            job["_started"] = now
            job["startedAt"] = iso(now)
            job["_snapshot"] = self._render(job)
            processing += 1
            if now - job["_started"] >= takes:
                self._complete(job, now)
                processing -= 1

    def _render(self, job: dict[str, Any]) -> bytes:
        emu = self.emu
        fields: list[str] = job["_fields"]
        flt = job["_filter"]
        name, lo, hi = flt
        rows = []
        for person in emu.store.iter_people():
            if name == "createdAt":
                ts = person["createdAt"]
            else:
                ts = max(person["updatedAt"], person.get(TOUCHED, 0))
            if lo <= ts <= hi:  # both bounds inclusive, like Marketo's
                rows.append(person)
        rows.sort(key=lambda p: p["id"])
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=FORMATS[job["format"]], lineterminator="\n")
        headers = job["_headers"]
        w.writerow([headers.get(f, f) for f in fields])
        for p in rows:
            out = []
            for f in fields:
                v = p.get(f)
                if v is None:
                    out.append("null")
                elif f in ("createdAt", "updatedAt"):
                    out.append(iso(v))
                elif isinstance(v, bool):
                    out.append("true" if v else "false")
                else:
                    out.append(v)
            w.writerow(out)
        job["numberOfRecords"] = len(rows)
        return buf.getvalue().encode()

    def _complete(self, job: dict[str, Any], now: float) -> None:
        data: bytes = job.pop("_snapshot", b"")
        if self.bytes_today + len(data) > self.emu.config.bulk_daily_quota_bytes:
            job["status"] = "Failed"
            job["errorMsg"] = self.quota_message()
        else:
            job["status"] = "Completed"
            self.bytes_today += len(data)
            self.files[job["exportId"]] = data
            job["fileSize"] = len(data)
            job["fileChecksum"] = "sha256:" + hashlib.sha256(data).hexdigest()
        job["finishedAt"] = iso(now)

    def quota_message(self) -> str:
        mb = self.emu.config.bulk_daily_quota_bytes // (1024 * 1024)
        return f"Export daily quota {mb}MB exceeded"

    def visible(self, call: Call) -> dict[str, Any]:
        job = self.jobs.get(call.path["exportId"])
        # Only the creating API user can see a job (bulk-extract.md).
        if job is None or job["_owner"] != call.user.client_id:
            raise ApiError("1003", f"Export Id {call.path['exportId']} not found")
        return job


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
    (fname, fval), = flt.items()
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
        "format": fmt, "status": "Created", "createdAt": iso(now),
        "_owner": call.user.client_id, "_fields": list(fields),
        "_headers": dict(body.get("columnHeaderNames") or {}),
        "_filter": (fname, int(start.timestamp()), int(end.timestamp())),
        "_queued": None, "_started": None,
    }
    emu.bulk.jobs[job["exportId"]] = job
    return success(call.rid, [public(job)])


async def enqueue(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    job = bulk.visible(call)
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
    return success(call.rid, [public(call.emu.bulk.visible(call))])


async def cancel(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    job = bulk.visible(call)
    if job["status"] in ("Created", "Queued", "Processing"):
        job["status"] = "Cancelled"
        job.pop("_snapshot", None)
    return success(call.rid, [public(job)])


async def list_jobs(call: Call) -> dict[str, Any]:
    bulk = call.emu.bulk
    bulk.advance()
    wanted = {s.lower() for s in call.list_param("status")}
    jobs = [public(j) for j in bulk.jobs.values()
            if j["_owner"] == call.user.client_id and (not wanted or j["status"].lower() in wanted)]
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
            return Response(b"", status_code=416,
                            headers={"Content-Range": f"bytes */{len(data)}"})
        return Response(data[first : last + 1], status_code=206, media_type="text/csv",
                        headers={"Accept-Ranges": "bytes",
                                 "Content-Range": f"bytes {first}-{last}/{len(data)}"})
    return Response(data, media_type="text/csv", headers={"Accept-Ranges": "bytes"})
