"""The Marketo daily quota as this app spends it: one counter row per quota day that the
background cycle and every webhook delivery add their calls to.

What it prevents: the cycle planning with the whole day's budget while the webhook
spends from the same quota (Marketo counts every call the API user makes), and two
writers overwriting each other's count (the row is added to under an ETag, never set).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

# Marketo's quota day starts at midnight US Central; a fixed UTC-6 is close enough for a
# budget (it never under-counts by more than the hour of DST).
QUOTA_TZ = timezone(timedelta(hours=-6))
KIND = "quota"  # state rows: PartitionKey "quota", RowKey the quota day


def quota_day(now: datetime | None = None) -> str:
    """The Marketo quota day `now` (default: this moment) falls in, as YYYY-MM-DD."""
    return (now or datetime.now(QUOTA_TZ)).astimezone(QUOTA_TZ).date().isoformat()
