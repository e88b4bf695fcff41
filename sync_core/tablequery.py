"""Queries of the state tables' text rows without the SDK's per-entity deserializer.

`TableClient.query_entities` runs every property of every row through the SDK's
generated model deserializer and then its type converter, which parses each row's
`Timestamp` with `strptime`: measured in a sync cycle, about half a millisecond of
profiled CPU a row, more than everything else the cycle does with the row. Links,
index rows and set members are text only, so their rows are read here as the JSON the
service sends with `odata=nometadata` (Int64 and DateTime values would stay text:
rows with those types are read through the SDK). Paging follows the service's
continuation headers. The request goes through the table client's own pipeline
(authentication, retries, tracing), like tablebatch's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from sync_core.tablebatch import account_url, service_error

_PARAMETER = re.compile(r"@(\w+)")
_NEXT = ("NextPartitionKey", "NextRowKey")


def literal(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def pages(
    client: TableClient,
    query_filter: str,
    parameters: Mapping[str, str] | None = None,
    select: Sequence[str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The rows matching `query_filter` (`@name` stands for parameters[name], a string),
    a page (at most 1,000 rows) at a time."""
    params = dict(parameters or {})

    def value(m: re.Match[str]) -> str:
        v = params[m.group(1)]
        if not isinstance(v, str):
            raise TypeError(f"query parameter @{m.group(1)}: only text is supported")
        return literal(v)

    query: dict[str, str] = {"$filter": _PARAMETER.sub(value, query_filter)}
    if select:
        query["$select"] = ",".join(select)
    url = f"{account_url(client)}/{client.table_name}()"
    headers = {
        "x-ms-version": client.api_version,
        "DataServiceVersion": "3.0",
        "Accept": "application/json;odata=nometadata",
    }
    while True:
        request = HttpRequest("GET", url, params=query, headers=headers)
        # stream=True: the pipeline would otherwise parse the JSON too, and drop it.
        response = client._client.send_request(request, stream=True)
        content = response.read()
        if response.status_code != 200:
            raise service_error(response.status_code, content, response.headers)
        yield list(json.loads(content)["value"])
        nxt = {k: response.headers.get(f"x-ms-continuation-{k}") for k in _NEXT}
        if not nxt["NextPartitionKey"]:
            return
        query.update({k: v for k, v in nxt.items() if v})
        if not nxt["NextRowKey"]:
            query.pop("NextRowKey", None)


def rows(
    client: TableClient,
    query_filter: str,
    parameters: Mapping[str, str] | None = None,
    select: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    return [row for page in pages(client, query_filter, parameters, select) for row in page]
