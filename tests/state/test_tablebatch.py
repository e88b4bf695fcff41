"""The lean entity-group transaction against Azurite, side by side with the SDK's own
`submit_transaction`: the same rows stored, the same errors, nothing half-written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError

from sync_core import tablebatch
from sync_core.tablestore import transport_options

ODD_KEYS = ["it's", "50%25 off", "a b+c&d=e", "ünï-çødé", "''", "x)y(z,'"]


@pytest.fixture
def tables(azurite: str) -> Iterator[tuple[TableClient, TableClient]]:
    """Two fresh tables: one written by the SDK, one by tablebatch."""
    service = TableServiceClient.from_connection_string(azurite, **transport_options())
    names = [f"tb{uuid.uuid4().hex[:12]}" for _ in range(2)]
    clients = [service.create_table(n) for n in names]
    yield clients[0], clients[1]
    for n in names:
        service.delete_table(n)
    service.close()


def _rows(client: TableClient, pk: str) -> list[dict]:
    rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
    return sorted(
        ({k: (v, type(v).__name__) for k, v in r.items()} for r in rows),
        key=lambda r: r["RowKey"],
    )


def test_rows_and_their_types_are_stored_as_the_sdk_stores_them(tables):
    sdk, lean = tables
    entities = [
        {
            "PartitionKey": "p'1",
            "RowKey": key,
            "text": 'déjà vu\n"quoted"',
            "small": 7,
            "big": 2**31 - 1,
            "ratio": 0.25,
            "flag": True,
            "absent": None,
        }
        for key in ODD_KEYS
    ]
    sdk.submit_transaction([("upsert", e) for e in entities])
    tablebatch.submit(lean, [("upsert", e) for e in entities])
    assert _rows(lean, "p'1") == _rows(sdk, "p'1")
    assert len(_rows(lean, "p'1")) == len(ODD_KEYS)
    # upsert merges into a stored row, as the SDK's transaction does by default
    tablebatch.submit(lean, [("upsert", {"PartitionKey": "p'1", "RowKey": "''", "small": 8})])
    row = lean.get_entity("p'1", "''")
    assert row["small"] == 8 and row["text"] == 'déjà vu\n"quoted"'
    tablebatch.submit(lean, [("delete", e) for e in entities])
    assert _rows(lean, "p'1") == []


def test_a_failed_operation_writes_nothing_and_names_the_service_error(tables):
    _, lean = tables
    tablebatch.submit(lean, [("create", {"PartitionKey": "p", "RowKey": "taken", "v": "1"})])
    with pytest.raises(TableTransactionError) as exc:
        tablebatch.submit(
            lean,
            [
                ("upsert", {"PartitionKey": "p", "RowKey": "new", "v": "2"}),
                ("create", {"PartitionKey": "p", "RowKey": "taken", "v": "3"}),
            ],
        )
    assert exc.value.error_code == "EntityAlreadyExists"
    assert [r["RowKey"] for r in lean.query_entities("PartitionKey eq 'p'")] == ["taken"]
    assert lean.get_entity("p", "taken")["v"] == "1"
    with pytest.raises(TableTransactionError) as gone:
        tablebatch.submit(lean, [("delete", {"PartitionKey": "p", "RowKey": "never"})])
    assert gone.value.error_code == "ResourceNotFound"


def test_a_missing_table_and_bad_input_are_refused_clearly(tables, azurite: str):
    _, lean = tables
    missing = TableClient.from_connection_string(azurite, f"tb{uuid.uuid4().hex[:12]}")
    ops = [("upsert", {"PartitionKey": "p", "RowKey": "r"})]
    seen = []
    for submit in (
        lambda: missing.submit_transaction(ops),
        lambda: tablebatch.submit(missing, ops),
    ):
        with pytest.raises((TableTransactionError, ResourceNotFoundError)) as exc:
            submit()
        seen.append((type(exc.value), exc.value.error_code))
    assert seen[0] == seen[1] and seen[1][1] == "TableNotFound"
    with pytest.raises(ValueError, match="one PartitionKey"):
        tablebatch.submit(
            lean, [("upsert", {"PartitionKey": a, "RowKey": "r"}) for a in ("a", "b")]
        )
    with pytest.raises(ValueError, match="at most 100"):
        tablebatch.submit(
            lean, [("upsert", {"PartitionKey": "a", "RowKey": str(i)}) for i in range(101)]
        )
    with pytest.raises(ValueError, match="unknown transaction operation 'merge'"):
        tablebatch.submit(lean, [("merge", {"PartitionKey": "a", "RowKey": "r"})])
    with pytest.raises(TypeError, match="'n': 2147483648 is outside Int32"):
        tablebatch.submit(lean, [("upsert", {"PartitionKey": "a", "RowKey": "r", "n": 2**31})])
    with pytest.raises(TypeError, match="'when': datetime"):
        from datetime import datetime

        tablebatch.submit(
            lean, [("upsert", {"PartitionKey": "a", "RowKey": "r", "when": datetime.now()})]
        )
    assert list(lean.list_entities()) == []


def test_an_answer_without_one_status_per_operation_is_not_taken_for_success():
    """A 202 whose body names fewer answers than operations (a proxy's truncation, a
    format this code cannot read) must fail the write, never pass for it."""
    from azure.core.exceptions import HttpResponseError

    class Answer:
        status_code, headers = 202, {}

        def read(self) -> bytes:
            return b"--batchresponse_1\r\n\r\n--batchresponse_1--\r\n"

    class Pipeline:
        def send_request(self, request, stream=False):
            return Answer()

    class Client:
        url, table_name, api_version = "https://acct.table.core.windows.net", "t", "2019-02-02"
        _client = Pipeline()

    with pytest.raises(HttpResponseError, match="2 operations: 0 answers"):
        tablebatch.submit(
            Client(),  # type: ignore[arg-type]
            [("upsert", {"PartitionKey": "p", "RowKey": str(i)}) for i in range(2)],
        )
