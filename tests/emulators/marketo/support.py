"""Test helpers: a token-aware Marketo REST client (over real HTTP or in-process ASGI)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

USERS = {"sync-app": "sync-app-secret", "marketing-user": "marketing-user-secret"}


class Api:
    """Calls the REST API as one API user; fetches and caches the token like a client."""

    def __init__(self, http: Any, user: str = "sync-app") -> None:
        self.http = http
        self.user = user
        self.token: str | None = None

    def login(self) -> str:
        r = self.http.get("/identity/oauth/token", params={
            "grant_type": "client_credentials", "client_id": self.user,
            "client_secret": USERS[self.user]})
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]
        return self.token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token or self.login()}"}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(path, params=params, headers=self._headers())
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def post(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        r = self.http.post(path, json=body, params=params, headers=self._headers())
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers(), **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)  # type: ignore[no-any-return]

    # convenience
    def sync(self, records: list[dict[str, Any]], action: str = "createOrUpdate",
             lookup: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": action, "input": records}
        if lookup:
            body["lookupField"] = lookup
        return self.post("/rest/v1/leads.json", body)

    def paging_token(self, since: str = "2000-01-01T00:00:00Z") -> str:
        return str(self.get("/rest/v1/activities/pagingtoken.json",
                            sinceDatetime=since)["nextPageToken"])


class AsgiHttp:
    """A synchronous facade over httpx.AsyncClient + ASGITransport (fast, in-process)."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                        base_url="http://marketo.test")

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
