"""Text-row queries against Azurite, side by side with the SDK's `query_entities`: the
same rows for the same filter, across pages, and the same error for a missing table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient

from sync_core import tablequery
from sync_core.tablestore import transport_options


@pytest.fixture
def table(azurite: str) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(azurite, **transport_options())
    name = f"tq{uuid.uuid4().hex[:12]}"
    client = service.create_table(name)
    yield client
    service.delete_table(name)
    service.close()


def _sdk(client: TableClient, query: str, params: dict, select=None) -> list[dict]:
    rows = client.query_entities(query, parameters=params, select=select)
    return [dict(r) for r in rows]


def test_the_same_rows_as_the_sdk_across_pages_with_quotes_and_select(table: TableClient):
    pks = ["it's", "plain", "a b%c"]
    for pk in pks:
        for i in range(0, 1200, 100):
            table.submit_transaction(
                [
                    ("upsert", {"PartitionKey": pk, "RowKey": f"{n:05d}", "v": f"x'{n}", "w": "ü"})
                    for n in range(i, i + 100)
                ]
            )
    # 3,600 rows: several pages (at most 1,000 a page), continued across partitions
    everything = tablequery.rows(table, "PartitionKey ge @lo", {"lo": ""})
    assert len(everything) == 3600
    assert sorted((r["PartitionKey"], r["RowKey"]) for r in everything) == sorted(
        (pk, f"{n:05d}") for pk in pks for n in range(1200)
    )
    query = "PartitionKey eq @pk and ( RowKey eq @a or RowKey ge @b )"
    params = {"pk": "it's", "a": "00007", "b": "01190"}
    ours = tablequery.rows(table, query, params, select=["RowKey", "v"])
    assert ours == _sdk(table, query, params, select=["RowKey", "v"])
    assert [r["RowKey"] for r in ours] == ["00007", *(f"{n:05d}" for n in range(1190, 1200))]
    assert ours[0] == {"RowKey": "00007", "v": "x'7"}
    full = tablequery.rows(
        table, "PartitionKey eq @pk and RowKey eq @k", {"pk": "a b%c", "k": "00001"}
    )
    sdk_full = _sdk(table, "PartitionKey eq @pk and RowKey eq @k", {"pk": "a b%c", "k": "00001"})
    assert [{k: full[0][k] for k in ("PartitionKey", "RowKey", "v", "w")}] == [
        {k: sdk_full[0][k] for k in ("PartitionKey", "RowKey", "v", "w")}
    ]
    assert [len(p) for p in tablequery.pages(table, "PartitionKey eq @pk", {"pk": "plain"})] == [
        1000,
        200,
    ]


def test_a_missing_table_and_a_non_text_parameter_are_refused(azurite: str, table: TableClient):
    missing = TableClient.from_connection_string(azurite, f"tq{uuid.uuid4().hex[:12]}")
    with pytest.raises(ResourceNotFoundError) as ours:
        tablequery.rows(missing, "PartitionKey eq @pk", {"pk": "p"})
    with pytest.raises(ResourceNotFoundError) as theirs:
        _sdk(missing, "PartitionKey eq @pk", {"pk": "p"})
    assert ours.value.error_code == theirs.value.error_code == "TableNotFound"
    with pytest.raises(TypeError, match="@n: only text"):
        tablequery.rows(table, "RowKey eq @n", {"n": 5})  # type: ignore[dict-item]
