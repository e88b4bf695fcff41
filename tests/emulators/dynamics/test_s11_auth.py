"""§11 Authentication: azure-identity ClientSecretCredential over TLS, 401s, OAuth errors."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from emulators.dynamics import DynamicsApp, create_app
from emulators.dynamics.tls import write_tls_files
from tests.emulators.dynamics.conftest import SALES_USER, Dv
from tests.support.servers import running_server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DynamicsApp, str,
                                                                            str]]:
    files = write_tls_files(tmp_path_factory.mktemp("tls"))
    app = create_app()
    with running_server(app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as url:
        yield app, url, files.ca_bundle


def _cred(app: DynamicsApp, url: str, ca: str, client: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(app.cfg.tenant_id, client, secret, authority=url,
                                  disable_instance_discovery=True, connection_verify=ca)


def test_client_secret_credential_over_tls(tls_server: tuple[DynamicsApp, str, str]) -> None:
    app, url, ca = tls_server
    assert url.startswith("https://")
    token = _cred(app, url, ca, "sales-user", "sales-user-secret").get_token(f"{url}/.default")
    assert token.expires_on > 0
    r = httpx.get(f"{url}/api/data/v9.2/WhoAmI", verify=ssl.create_default_context(cafile=ca),
                  headers={"Authorization": f"Bearer {token.token}"})
    assert r.status_code == 200 and r.json()["UserId"] == SALES_USER


def test_bad_secret_fails_in_azure_identity(tls_server: tuple[DynamicsApp, str, str]) -> None:
    app, url, ca = tls_server
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _cred(app, url, ca, "sync-app", "wrong").get_token(f"{url}/.default")


def test_openid_configuration(base: str, app: DynamicsApp) -> None:
    doc = httpx.get(f"{base}/{app.cfg.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == f"{base}/{app.cfg.tenant_id}/oauth2/v2.0/token"


def test_token_endpoint_errors(base: str, app: DynamicsApp) -> None:
    url = f"{base}/{app.cfg.tenant_id}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": "sync-app",
            "client_secret": "sync-app-secret", "scope": f"{base}/.default"}
    assert httpx.post(url, data={**form, "scope": f"{base}/user_impersonation"}
                      ).json()["error"] == "invalid_scope"
    assert httpx.post(url, data={**form, "client_id": "nobody"}).json()["error"] == \
        "unauthorized_client"
    assert httpx.post(url, data={**form, "grant_type": "password"}).status_code == 400


def test_missing_invalid_expired_token_401(base: str, admin: httpx.Client) -> None:
    api = f"{base}/api/data/v9.2/WhoAmI"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, headers={"Authorization": "Bearer abc.def.ghi"}).status_code == 401
    expired = admin.post("/tokens", json={"client_id": "sync-app", "expires_in": -5}).json()
    r = httpx.get(api, headers={"Authorization": f"Bearer {expired['access_token']}"})
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers


def test_dv_fixture_uses_real_token_endpoint(dv: Dv) -> None:
    assert dv.get("WhoAmI").status_code == 200


def test_cli_tls_writes_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from emulators.dynamics import cli

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    spec = cli.server_spec(parser.parse_args(["dynamics", "--tls", "--port", "9999"]))
    assert spec.url == "https://127.0.0.1:9999"
    assert (tmp_path / ".run" / "dynamics-ca.pem").exists()
    all_p = argparse.ArgumentParser()
    all_p.add_argument("--host", default="127.0.0.1")
    cli.register_defaults(all_p)
    args = all_p.parse_args(["--dynamics-port", "9000"])
    args.command = "all"
    assert cli.server_spec(args).url == "http://127.0.0.1:9000"
