"""People acting on the emulated systems through the vendors' public APIs.

A marketer (`marketing-user`) edits Marketo people through the REST API, a
salesperson (`sales-user`) edits Dynamics records through the Web API; set-up and
fault injection use the emulators' `/_emulator/` admin API. Shared by the end-to-end
tests and `make demo`, so both exercise the sync exactly the way a real org would.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

SETS = {"lead": "leads", "contact": "contacts"}
KEYS = {"lead": "leadid", "contact": "contactid"}


@dataclass
class People:
    marketo_url: str
    dynamics_url: str
    ca_bundle: str
    tenant: str
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def _tls(self) -> ssl.SSLContext:
        # A context, not a path: httpx deprecates verify=<str>.
        return ssl.create_default_context(cafile=self.ca_bundle)

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
        for _ in range(2):
            r = httpx.request(
                method,
                f"{self.marketo_url}{path}",
                headers={"Authorization": f"Bearer {self._mkto_token()}"},
                **kw,
            )
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            codes = {str(e.get("code")) for e in body.get("errors") or []}
            if codes & {"601", "602"}:
                self._tokens.pop("mkto", None)  # a person's tool signs in again, too
                continue
            break
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
                verify=self._tls(),
            )
            r.raise_for_status()
            self._tokens["dyn"] = r.json()["access_token"]
        return self._tokens["dyn"]

    def dynamics(self, method: str, path: str, **kw: Any) -> httpx.Response:
        extra = kw.pop("headers", {})
        for _ in range(2):
            headers = {
                "Authorization": f"Bearer {self._dyn_token()}",
                "Accept": "application/json",
                "OData-Version": "4.0",
                **extra,
            }
            r = httpx.request(
                method,
                f"{self.dynamics_url}/api/data/v9.2/{path}",
                headers=headers,
                verify=self._tls(),
                **kw,
            )
            if r.status_code != 401:
                break
            self._tokens.pop("dyn", None)  # expired (compressed time): sign in again
        return r

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

    def dyn_qualify(
        self, lead_id: str, *, account: bool = False, contact: bool = True
    ) -> dict[str, str]:
        """Qualify a lead with the QualifyLead action: {"account": id, "contact": id}."""
        r = self.dynamics(
            "POST",
            f"leads({lead_id})/Microsoft.Dynamics.CRM.QualifyLead",
            json={
                "CreateAccount": account,
                "CreateContact": contact,
                "CreateOpportunity": False,
                "Status": 3,
            },
        )
        assert r.status_code == 200, r.text
        created: dict[str, str] = {}
        for ref in r.json()["value"]:
            kind = str(ref["@odata.type"]).rsplit(".", 1)[-1]  # account | contact
            created[kind] = str(ref[f"{kind}id"])
        return created

    def dyn_merge(self, entity: str, master_id: str, subordinate_id: str, **update: Any) -> None:
        """Merge two records with the Merge action; `update` becomes UpdateContent."""
        kind = f"Microsoft.Dynamics.CRM.{entity}"
        body: dict[str, Any] = {
            "Target": {"@odata.type": kind, KEYS[entity]: master_id},
            "Subordinate": {"@odata.type": kind, KEYS[entity]: subordinate_id},
            "PerformParentingChecks": False,
        }
        if update:
            body["UpdateContent"] = {"@odata.type": kind, **update}
        r = self.dynamics("POST", "Merge", json=body)
        assert r.status_code == 204, r.text

    def dyn_count(self, entity: str) -> int:
        r = self.dynamics("GET", f"{SETS[entity]}?$select={KEYS[entity]}")
        return len(r.json()["value"])

    # ---- admin ---------------------------------------------------------------
    def marketo_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.marketo_url}/_emulator/{path}", **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def dyn_revoke(self, table: str, privilege: str, user: str = "sync-app") -> None:
        """Take a table privilege (Read, Write, Create, ...) away from a user's roles."""
        self.dynamics_admin(
            "DELETE",
            "security/privileges",
            json={"user": user, "table": table, "privilege": privilege},
        )

    def dyn_grant(
        self, table: str, privilege: str, depth: str = "Organization", user: str = "sync-app"
    ) -> None:
        """Give a table privilege at a depth (User ... Organization) in the user's role."""
        self.dynamics_admin(
            "PUT",
            "security/privileges",
            json={"user": user, "table": table, "privilege": privilege, "depth": depth},
        )

    def dynamics_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method, f"{self.dynamics_url}/_emulator/{path}", verify=self._tls(), **kw
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
