"""What can go wrong, typed by what the engine should do about it.

Callers branch on the class, never on an HTTP status or a vendor code, so a new
code is handled by classifying it once here-adjacent (in the client) rather than in
every loop. The tree:

    SyncError
      TransientError          retry the same request after a backoff
        Throttled             wait `retry_after` seconds first (429, 606, 615)
      TooLarge                the request ran past the server's time limit and was rolled
                              back (Dataverse 0x80044151): resend it in smaller pieces
      OutcomeUnknown          a write got no answer (timeout, dropped connection, 604):
                              it may have landed; re-resolve, never resend it blindly
      RecordRejected          the peer refused this record; log it, skip it, go on
      StopCycle               stop this cycle; state stays where it was
        QuotaExhausted        the Marketo daily budget for background work is used
        AuthFailed            credentials rejected; needs a human
        ConfigError           mapping/settings inconsistent with the peers
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the engine raises on purpose."""


class TransientError(SyncError):
    """The outcome was 'not now' (5xx, timeout, connection reset): retrying may succeed."""


class Throttled(TransientError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(SyncError):
    """Resending the same request would time out again; split it (not a TransientError,
    so the retry policy does not resend it whole)."""


class OutcomeUnknown(SyncError):
    """A non-idempotent write may or may not have been applied. Whoever catches it must
    find out what happened (look the record up, an intent row) before writing again."""


class RecordRejected(SyncError):
    """The peer answered 'no' for one record (validation, security, duplicate...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StopCycle(SyncError):
    """Continuing would do harm or cannot succeed; end the cycle without advancing state."""


class QuotaExhausted(StopCycle):
    pass


class AuthFailed(StopCycle):
    pass


class ConfigError(StopCycle):
    pass


class StaleRecord(SyncError):
    """The record changed after we read it (HTTP 412 on If-Match): re-plan next cycle."""


class DeltaExpired(SyncError):
    """A Dataverse change-tracking token is too old: run a full reconcile instead."""


class ChangeTrackingOff(SyncError):
    """Change tracking is not enabled on the table: fall back to a modifiedon watermark."""


class OutOfTime(SyncError):
    """The cycle's time budget is used up; progress so far is saved and resumes next time."""
