"""The report `doctor` builds: one Check per thing it looked at, and its verdict.

Shared by doctor's sections (Marketo, Dynamics, Table Storage, the mapping) so each
can add, and skip what an earlier failure makes meaningless, in one format; a section
never prints, so one report renders the same as text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sync_core.http import RetryPolicy

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
# Diagnose fast: one retry (a 401 needs it to refresh the token), short waits.
FAST = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_total_wait=5.0)
README = "infra/README.md"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    notes: list[str] = field(default_factory=list)


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, detail: str, fix: str = "", **kw: Any) -> Check:
        check = Check(name, status, detail, fix, **kw)
        self.checks.append(check)
        return check

    def skip(self, names: list[str], why: str) -> None:
        for name in names:
            self.add(name, "SKIP", f"not checked: {why}")


def error_text(exc: BaseException) -> str:
    """The error as one detail line (a server's HTML error page would bury the report)."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
