"""§12 Reference clients: Microsoft's PowerPlatform-Dataverse-Client create/read/update over TLS.

Skipped when the optional SDK is not installed (it is not in requirements-dev.txt).
"""

from __future__ import annotations

import pytest
from azure.identity import ClientSecretCredential

from emulators.dynamics import create_app
from emulators.dynamics.tls import write_tls_files
from tests.support.servers import running_server


def test_official_sdk_create_read_update(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client_mod = pytest.importorskip("PowerPlatform.Dataverse.client")
    files = write_tls_files(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", files.ca_bundle)  # the SDK uses requests
    app = create_app()
    with running_server(app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as url:
        cred = ClientSecretCredential(app.cfg.tenant_id, "sync-app", "sync-app-secret",
                                      authority=url, disable_instance_discovery=True,
                                      connection_verify=files.ca_bundle)
        client = client_mod.DataverseClient(url, cred)
        rid = client.records.create("contact", {"firstname": "Sdk", "lastname": "User",
                                                "new_marketoid": "5"})
        ops = client.records
        getter = ops.retrieve if hasattr(ops, "retrieve") else ops.get
        rec = getter("contact", rid, select=["firstname", "lastname"])
        assert rec["firstname"] == "Sdk" and rec["contactid"] == rid
        ops.update("contact", rid, {"jobtitle": "SDK"})
        row = app.state.stores["contact"].rows[rid]
        assert row["jobtitle"] == "SDK"
        client.close()  # else uvicorn's graceful shutdown waits on keep-alive connections
        cred.close()
