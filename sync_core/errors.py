"""Every error the sync raises on purpose, typed by what the engine does about it.

Callers branch on the class, never on an HTTP status or a vendor code: each client
classifies a vendor's answer once (marketo.py, dataverse.py), by its documented code, so
a new code is handled in one place rather than in every loop. This module imports
nothing from sync_core, so every module can use it without an import cycle. The whole
tree, with what happens on each:

    SyncError                 anything not caught below ends the cycle 'failed', the
                              class named in its message; state stays where it was
      TransientError          retry the same request after a backoff (http.RetryPolicy);
                              still failing after the bounded attempts, the work it
                              carried waits for the next cycle
        Throttled             wait `retry_after` seconds first (429, Marketo 606/615)
      TooLarge                rolled back for running past the server's time limit
                              (Dataverse 0x80044151): resend it in smaller pieces
      OutcomeUnknown          a write got no usable answer (timeout, dropped connection,
                              5xx, Marketo 604): it may have landed; re-resolve (look the
                              record up, an intent row), never resend it blindly
      RecordRejected          the peer refused this record: log it, skip it, go on
      StaleRecord             the record changed since it was read (412 on If-Match):
                              leave it, the next cycle re-plans it
      DeltaExpired            the change-tracking token is too old (Dataverse
                              0x80044352): re-read the whole table and compare
      ChangeTrackingOff       the table has change tracking off: follow a modifiedon
                              watermark instead
      OutOfTime               the cycle's time budget is used up:
                              end 'partial' with progress saved; the next cycle resumes
      PlanLimitReached        the dry run has planned `--limit` people: stop; the plan
                              reads 'truncated'
      DryRunRefused           the dry run met a client or store method it has not
                              classified as a read or a write: stop rather than risk it
      BadRequest              a webhook body the handler cannot act on: answer 400
                              naming the field (also a ValueError)
      StopCycle               stop this cycle at once ('failed'); state stays where it was
        QuotaExhausted        the Marketo daily budget for background work is used:
                              end 'stopped' until the quota day turns
        AuthFailed            credentials or a freshly issued token refused; needs a human
          AccessDenied        credentials accepted, a permission missing (Marketo 603)
        ConfigError           mapping or settings inconsistent, in themselves or with
                              the peers
          SettingsError       a setting is missing or malformed (found at start-up)
    CycleFailed               (a RuntimeError, outside SyncError) raised to the Functions
                              host after a cycle ended 'failed', so the invocation shows
                              as failed; nothing in the engine catches it

An expired or refused token is not an error here: each client's `httpx.Auth` flow
(marketo.MarketoAuth, dataverse.DataverseAuth) renews it and resends the request once;
refused again, the client raises AuthFailed. `explain.NotFound` ("no such person") is
the explain command's answer to its user, not an engine outcome, and stays there.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the engine raises on purpose and acts on."""


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


class StaleRecord(SyncError):
    """The record changed after we read it (HTTP 412 on If-Match): re-plan next cycle."""


class DeltaExpired(SyncError):
    """A Dataverse change-tracking token is too old: run a full reconcile instead."""


class ChangeTrackingOff(SyncError):
    """Change tracking is not enabled on the table: fall back to a modifiedon watermark."""


class PlanLimitReached(SyncError):
    """The plan holds `--limit` people; the rest of the backlog is not planned."""


class DryRunRefused(SyncError):
    """Something used a client or store method the dry run has not classified."""


class BadRequest(SyncError, ValueError):
    """The webhook body is invalid; `field` names the part at fault (answered 400)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class StopCycle(SyncError):
    """Continuing would do harm or cannot succeed; end the cycle without advancing state."""


class QuotaExhausted(StopCycle):
    pass


class AuthFailed(StopCycle):
    pass


class AccessDenied(AuthFailed):
    """The API user is known but lacks a permission (its role, an IP allow-list)."""


class ConfigError(StopCycle):
    pass


class SettingsError(ConfigError):
    """A setting is missing or malformed; the message names it and says what is expected."""


class CycleFailed(RuntimeError):
    """Raised to the Functions host so a failed cycle shows as a failed invocation."""


class OutOfTime(SyncError):
    """The cycle's time budget is used up; progress so far is saved and resumes next time."""
