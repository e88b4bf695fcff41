"""Dataverse-shaped errors: `{"error":{"code":"0x...","message":"..."}}` with the right status.

Raising `DataverseError` anywhere in a handler yields the documented body and HTTP status,
so a $batch part, a single request and a validation failure all look the same to a client
(clients branch on `error.code`, so a wrong shape silently breaks their retry logic).
"""

from __future__ import annotations

import json


class DataverseError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


def not_found(logical: str, key: str) -> DataverseError:
    return DataverseError(404, "0x80040217", f"{logical} With Id = {key} Does Not Exist")


def bad_property(name: str, logical: str) -> DataverseError:
    return DataverseError(
        400, "0x80060888",
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical}'.")


def bad_request(message: str, code: str = "0x80060888") -> DataverseError:
    return DataverseError(400, code, message)


def version_mismatch() -> DataverseError:
    return DataverseError(
        412, "0x80060882",
        "The version of the existing record doesn't match the RowVersion property provided.")


def throttled(kind: str, retry_after: int | str, limit: float, window: float) -> DataverseError:
    w = int(window)
    if kind == "requests":
        code = "0x80072322"
        msg = (f"Number of requests exceeded the limit of {int(limit)} over time window of {w} "
               "seconds.")
    elif kind == "time":
        code = "0x80072321"
        msg = (f"Combined execution time of incoming requests exceeded limit of {int(limit):,} "
               f" milliseconds over time window of {w} seconds. Decrease number of concurrent "
               "requests or reduce the duration of requests and try again later.")
    else:
        code = "0x80072326"
        msg = f"Number of concurrent requests exceeded the limit of {int(limit)}."
    header = retry_after if isinstance(retry_after, str) else str(max(1, retry_after))
    return DataverseError(429, code, msg, {"Retry-After": header})
