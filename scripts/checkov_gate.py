"""Run checkov on infra/ and fail on any failed check OR any file checkov could not parse.

checkov 3.3.30 (pycep-parser 0.5.1) skips a Bicep file it cannot parse and still exits 0,
so its exit code alone would let an unscanned template through. This reads the JSON report
and fails on `summary.parsing_errors` too.

Usage: python scripts/checkov_gate.py   (from the repo root or anywhere; needs .venv-iac)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKOV = ROOT / ".venv-iac" / "bin" / "checkov"
INFRA = ROOT / "infra"


def _summaries(report: Any) -> list[dict[str, Any]]:
    """One summary per framework: checkov writes a list when several frameworks ran, a dict
    for one, and a dict without results (or an empty list) when nothing was scanned."""
    reports = report if isinstance(report, list) else [report]
    return [r.get("summary") or {} for r in reports if isinstance(r, dict)]


def main() -> int:
    if not CHECKOV.exists():
        print(f"checkov gate: FAILED, {CHECKOV} not found (make iac installs it)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "checkov.json"
        cmd = [
            str(CHECKOV),
            "-d", str(INFRA),
            "--framework", "bicep",
            "--skip-download",
            "--compact",
            "-o", "cli",
            "-o", "json",
            "--output-file-path", f"console,{report_path}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, check=False)
        if not report_path.exists():
            print(f"checkov gate: FAILED, checkov exited {proc.returncode} without a JSON report")
            return 2
        try:
            report = json.loads(report_path.read_text(encoding="utf-8") or "null")
        except json.JSONDecodeError as exc:
            print(f"checkov gate: FAILED, unreadable JSON report ({exc})")
            return 2

    summaries = _summaries(report)
    passed = sum(int(s.get("passed", 0)) for s in summaries)
    failed = sum(int(s.get("failed", 0)) for s in summaries)
    skipped = sum(int(s.get("skipped", 0)) for s in summaries)
    parsing = sum(int(s.get("parsing_errors", 0)) for s in summaries)
    counts = f"passed={passed} failed={failed} skipped={skipped} parsing_errors={parsing}"

    if parsing:
        print(f"checkov gate: FAILED, {parsing} file(s) unparsable, so not scanned ({counts})")
        return 1
    if failed:
        print(f"checkov gate: FAILED, {failed} check(s) failed ({counts})")
        return 1
    if proc.returncode != 0:
        print(f"checkov gate: FAILED, checkov exited {proc.returncode} ({counts})")
        return 1
    if passed == 0:
        # An empty report means nothing was scanned (wrong folder, every file unparsable...).
        print(f"checkov gate: FAILED, no checks ran on {INFRA} ({counts})")
        return 1
    print(f"checkov gate: OK ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
