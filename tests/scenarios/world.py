"""A running world for end-to-end scenarios: both emulators over real HTTP (Dynamics
over TLS, as azure-identity requires), Azurite, and the sync configured against them.

People act through the vendors' public APIs with their own identities: a marketer
(`marketing-user`) edits Marketo people, a salesperson (`sales-user`) edits Dynamics
records. Only set-up and fault injection use the emulators' `/_emulator/` admin API.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme

from emulators.dynamics import DynamicsConfig
from emulators.dynamics import create_app as dynamics_app
from emulators.marketo import MarketoConfig
from emulators.marketo import create_app as marketo_app
from sync_core.entrypoints import run_cycle
from sync_core.settings import Settings, load_settings
from sync_core.state import StateStore
from tests.support.servers import running_server

SETS = {"lead": "leads", "contact": "contacts"}
KEYS = {"lead": "leadid", "contact": "contactid"}


@dataclass
class World:
    marketo_url: str
    dynamics_url: str
    ca_bundle: str
    storage: str
    prefix: str
    tenant: str
    extra_env: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    # ---- the sync ------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            "MARKETO_BASE_URL": self.marketo_url,
            "MARKETO_CLIENT_ID": "sync-app",
            "MARKETO_CLIENT_SECRET": "sync-app-secret",
            "DYNAMICS_URL": self.dynamics_url,
            "DYNAMICS_AUTHORITY_HOST": self.dynamics_url,
            "DYNAMICS_TENANT_ID": self.tenant,
            "DYNAMICS_CLIENT_ID": "sync-app",
            "DYNAMICS_CLIENT_SECRET": "sync-app-secret",
            "SYNC_STORAGE_CONNECTION": self.storage,
            "SYNC_TABLE_PREFIX": self.prefix,
            "SYNC_WEBHOOK_SECRET": "test-webhook-secret",
            **self.extra_env,
        }

    def settings(self) -> Settings:
        return load_settings(self.env())

    def cycle(self) -> dict[str, Any]:
        summary = asyncio.run(run_cycle(self.settings(), ca_bundle=self.ca_bundle))
        assert summary["outcome"] in ("succeeded", "skipped", "stopped"), summary
        return summary

    def store(self) -> StateStore:
        return StateStore.from_connection_string(self.storage, self.prefix)

    # ---- a marketer in Marketo -----------------------------------------------
    def _mkto_token(self) -> str:
        if "mkto" not in self._tokens:
            r = httpx.get(
                f"{self.marketo_url}/identity/oauth/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": "marketing-user",
                    "client_secret": "marketing-user-secret",
                },
            )
            r.raise_for_status()
            self._tokens["mkto"] = r.json()["access_token"]
        return self._tokens["mkto"]

    def marketo(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        r = httpx.request(
            method,
            f"{self.marketo_url}{path}",
            headers={"Authorization": f"Bearer {self._mkto_token()}"},
            **kw,
        )
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        assert body.get("success"), body
        return body

    def person(self, marketo_id: int, fields: str | None = None) -> dict[str, Any] | None:
        fields = fields or (
            "id,email,firstName,lastName,title,city,company,phone,unsubscribed,"
            "dynamicsId,dynamicsType,dynamicsDeleted"
        )
        body = self.marketo(
            "GET", "/rest/v1/leads.json",
            params={"filterType": "id", "filterValues": str(marketo_id), "fields": fields},
        )  # fmt: skip
        return (body.get("result") or [None])[0]

    def people_by_email(self, email: str) -> list[dict[str, Any]]:
        body = self.marketo(
            "GET", "/rest/v1/leads.json",
            params={"filterType": "email", "filterValues": email,
                    "fields": "id,email,firstName,lastName,dynamicsId,dynamicsType"},
        )  # fmt: skip
        return list(body.get("result") or [])

    def marketo_edit(self, marketo_id: int, **values: Any) -> None:
        body = self.marketo(
            "POST", "/rest/v1/leads.json",
            json={"action": "updateOnly", "lookupField": "id",
                  "input": [{"id": marketo_id, **values}]},
        )  # fmt: skip
        assert body["result"][0]["status"] == "updated", body

    def marketo_create(self, **values: Any) -> int:
        body = self.marketo(
            "POST", "/rest/v1/leads.json",
            json={"action": "createDuplicate", "input": [values]},
        )  # fmt: skip
        assert body["result"][0]["status"] == "created", body
        return int(body["result"][0]["id"])

    def marketo_delete(self, marketo_id: int) -> None:
        self.marketo("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": marketo_id}]})

    # ---- a salesperson in Dynamics -------------------------------------------
    def _dyn_token(self) -> str:
        if "dyn" not in self._tokens:
            r = httpx.post(
                f"{self.dynamics_url}/{self.tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sales-user",
                    "client_secret": "sales-user-secret",
                    "scope": f"{self.dynamics_url}/.default",
                },
                verify=self.ca_bundle,
            )
            r.raise_for_status()
            self._tokens["dyn"] = r.json()["access_token"]
        return self._tokens["dyn"]

    def dynamics(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._dyn_token()}",
            "Accept": "application/json",
            "OData-Version": "4.0",
            **kw.pop("headers", {}),
        }
        return httpx.request(
            method,
            f"{self.dynamics_url}/api/data/v9.2/{path}",
            headers=headers,
            verify=self.ca_bundle,
            **kw,
        )

    def dyn_create(self, entity: str, **values: Any) -> str:
        r = self.dynamics(
            "POST", SETS[entity], json=values, headers={"Prefer": "return=representation"}
        )
        assert r.status_code == 201, r.text
        return str(r.json()[KEYS[entity]])

    def dyn_edit(self, entity: str, record_id: str, **values: Any) -> None:
        r = self.dynamics("PATCH", f"{SETS[entity]}({record_id})", json=values)
        assert r.status_code == 204, r.text

    def dyn_delete(self, entity: str, record_id: str) -> None:
        r = self.dynamics("DELETE", f"{SETS[entity]}({record_id})")
        assert r.status_code == 204, r.text

    def dyn_get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        r = self.dynamics("GET", f"{SETS[entity]}({record_id})")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def dyn_count(self, entity: str) -> int:
        r = self.dynamics("GET", f"{SETS[entity]}?$select={KEYS[entity]}")
        return len(r.json()["value"])

    # ---- admin ---------------------------------------------------------------
    def marketo_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.marketo_url}/_emulator/{path}", **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def dynamics_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method, f"{self.dynamics_url}/_emulator/{path}", verify=self.ca_bundle, **kw
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def api_calls(self) -> tuple[int, int]:
        """REST calls seen by each emulator so far (Marketo, Dynamics)."""
        m = self.marketo_admin("GET", "stats")["totals"]["calls"]
        d = sum(
            int(v["calls"])
            for k, v in self.dynamics_admin("GET", "stats").items()
            if "token" not in k and "openid" not in k
        )
        return int(m), d


def open_world(
    stack: ExitStack,
    storage: str,
    tmp: Path,
    marketo_config: MarketoConfig | None = None,
    dynamics_config: DynamicsConfig | None = None,
) -> World:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, bundle = tmp / "cert.pem", tmp / "key.pem", tmp / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(bundle))
    mconf = marketo_config or MarketoConfig(rate_limit_calls=0)
    dconf = dynamics_config or DynamicsConfig()
    mkto = stack.enter_context(running_server(marketo_app(mconf)))
    dyn = stack.enter_context(
        running_server(dynamics_app(dconf), ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    )
    return World(
        marketo_url=mkto,
        dynamics_url=dyn,
        ca_bundle=str(bundle),
        storage=storage,
        prefix="s" + uuid.uuid4().hex[:12],
        tenant=dconf.tenant_id,
    )
