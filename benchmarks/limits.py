"""The limits the two APIs set, the fewest calls a piece of work needs under them, and
the time they impose on the calls a run made.

These numbers are what "fast" means for this sync: not CPU, but coming close to the
limits with the fewest calls. Keeping them (and the formulas) in one place, with their
sources, prevents a benchmark from grading the sync against a convenient figure.

Marketo (rest-api.md): 100 calls per 20 s and 10 in flight per instance, shared by every
integration, of which the sync allows itself half (sync_core.marketo: 50 / 20 s, 5 at
once); 50,000 calls a day, of which the background cycle uses at most 80 %
(SYNC_MARKETO_QUOTA_SHARE); 300 records per Lead Database call and per activity page.
Dataverse ("Service protection API limits"): per user 6,000 requests and 1,200 s of
execution time per 5 minutes, 52 at once; 5,000 rows a page, 1,000 operations a $batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MARKETO_BATCH = 300
MARKETO_CALLS_PER_S = 50 / 20  # the sync's configured share of 100 / 20 s
MARKETO_CONCURRENT = 5  # the sync's configured share of 10 in flight
MARKETO_DAILY_QUOTA = 50_000
MARKETO_QUOTA_SHARE = 0.8  # SYNC_MARKETO_QUOTA_SHARE default
DATAVERSE_PAGE = 5000
DATAVERSE_BATCH = 1000
DATAVERSE_REQUESTS_PER_S = 6000 / 300
DATAVERSE_EXECUTION_PER_S = 1200 / 300  # execution seconds per second of wall time
DATAVERSE_CONCURRENT = 52
DAY_S = 86_400.0


def pages(n: int, size: int) -> int:
    """Calls to page through n items: at least one, to learn there is nothing."""
    return max(1, math.ceil(n / size))


def batches(n: int, size: int) -> int:
    """Calls to write n records in full batches: none when there is nothing to write."""
    return math.ceil(n / size)


@dataclass(frozen=True)
class Work:
    """What one scenario must do, in the units the limits are stated in."""

    contacts_read: int = 0  # rows the contacts snapshot or delta returns
    leads_read: int = 0
    expired: bool = False  # the delta links expired: one refused delta call per table
    dynamics_writes: int = 0  # records written to Dataverse (contacts and leads)
    first_run: bool = False  # no Marketo cursor yet: one Get Paging Token starts the feed
    feed_activities: int = 0  # lead-change activities the feed must return (others' + ours)
    marketo_lookups: int = 0  # people to find in Marketo by email
    marketo_writes: int = 0  # people created or updated in Marketo
    # Real-time deliveries (each: read the person, write the Dynamics id back, log the
    # "Sync Person to Microsoft" activity in Marketo; create the record in Dataverse).
    deliveries: int = 0


def min_calls(w: Work) -> dict[str, int]:
    """The fewest calls the batch and page limits allow for `w`.

    Marketo: the feeds, one call per 300 activities the lead-change feed must return
    (our own writes included: the feed cannot be filtered by who changed a person, and a
    token moved past our writes would skip other people's edits made meanwhile) plus one
    for the deleted/merged feed; a first run needs one Get Paging Token instead. People
    to find by email: 300 a call. People to create or update: 300 a call (a create with
    `createOnly` and `lookupField=email` also tells which of them exist already, so a
    first load into an empty Marketo needs no look-up calls). Three calls a delivery.
    Not counted: pages that only scan background activity, metadata reads (hourly), the
    activity-type look-up (once per worker process).

    Dataverse: per table one call per 5,000 rows of the snapshot or delta (at least one,
    plus the refused call when the delta link expired); writes in $batch requests of
    1,000 operations, both tables sharing a batch. One create a delivery. Not counted:
    metadata and privilege reads.
    """
    feeds = 1 if w.first_run else pages(w.feed_activities, MARKETO_BATCH) + 1
    marketo = (
        feeds
        + batches(w.marketo_lookups, MARKETO_BATCH)
        + batches(w.marketo_writes, MARKETO_BATCH)
        + 3 * w.deliveries
    )
    dynamics = (
        pages(w.contacts_read, DATAVERSE_PAGE)
        + pages(w.leads_read, DATAVERSE_PAGE)
        + (2 if w.expired else 0)
        + batches(w.dynamics_writes, DATAVERSE_BATCH)
        + w.deliveries
    )
    return {"marketo": marketo, "dynamics": dynamics}


def quota_days(marketo_calls: float) -> int:
    """Days of the background cycle's share of the daily quota these calls need."""
    return max(1, math.ceil(marketo_calls / (MARKETO_DAILY_QUOTA * MARKETO_QUOTA_SHARE)))


def bounds(
    marketo_calls: int,
    dynamics_calls: int,
    marketo_server_s: float,
    dynamics_server_s: float,
    dynamics_execution_s: float,
) -> dict[str, float]:
    """Seconds each limit imposes on the calls made; the largest is the binding one.

    The concurrency bounds are Little's law: the server time all calls took together,
    divided by how many may be in flight at once. The daily quota imposes whole days
    only once a day's share is used up (the run starting at the quota reset)."""
    return {
        "Marketo rate (50 calls / 20 s)": marketo_calls / MARKETO_CALLS_PER_S,
        "Marketo in flight (5)": marketo_server_s / MARKETO_CONCURRENT,
        "Marketo daily quota (40,000)": (quota_days(marketo_calls) - 1) * DAY_S,
        "Dataverse requests (6,000 / 5 min)": dynamics_calls / DATAVERSE_REQUESTS_PER_S,
        "Dataverse execution (1,200 s / 5 min)": dynamics_execution_s / DATAVERSE_EXECUTION_PER_S,
        "Dataverse in flight (52)": dynamics_server_s / DATAVERSE_CONCURRENT,
    }
