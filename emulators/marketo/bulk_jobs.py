"""Bulk Lead Extract jobs: their states, the file snapshots and the daily export quota.

The store the bulk endpoints (bulk.py) work on. It reads the instance as a `Core`, so
the `Emulator` that owns it can import it without importing the endpoints back.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from emulators.marketo.core import Core
from emulators.marketo.envelope import ApiError
from emulators.marketo.fields import iso
from emulators.marketo.limits import next_quota_reset
from emulators.marketo.store import TOUCHED

FORMATS = {"CSV": ",", "TSV": "\t", "SSV": " "}


class BulkJobs:
    def __init__(self, emu: Core) -> None:
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

    def visible(self, export_id: str, client_id: str) -> dict[str, Any]:
        job = self.jobs.get(export_id)
        # Only the creating API user can see a job (bulk-extract.md).
        if job is None or job["_owner"] != client_id:
            raise ApiError("1003", f"Export Id {export_id} not found")
        return job
