"""The in-process simulation world: both emulators as ASGI apps, the memory store, and
the real engine (clients, `Cycle`, the sync-person use case) wired to them.

No sockets and no server: the real httpx clients reach the emulators through
`httpx.ASGITransport` (the emulators need no lifespan start-up, so none is run), the
Dataverse token comes from the emulator's Entra endpoint over the same transport, and
the store is `MemoryStateStore` on a simulated clock. Every engine call passes a `Wire`
(HTTP) or `StoreGate` (state) that counts it, can kill the engine at the N-th call
(a `Crash`, like a worker dying: nothing after that point reaches the world) and
notes which cycle wrote while holding which lease.

People act through the vendors' public APIs (a marketer in Marketo, a salesperson in
Dynamics); faults go through the emulators' `/_emulator/` admin APIs. Invariant checks
read the emulators' state directly (reading is not acting, and it is fast).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

import emulators.dynamics.webapi as dynamics_webapi
from emulators.dynamics import DynamicsConfig
from emulators.dynamics import create_app as dynamics_app
from emulators.marketo import MarketoConfig
from emulators.marketo import create_app as marketo_app
from sync_core.http import RetryPolicy
from sync_core.memstore import MemoryStateStore
from sync_core.runtime import Runtime, build_runtime
from sync_core.settings import Settings, load_settings
from sync_core.state import Link, StateStore, link_from_row

TENANT = DynamicsConfig().tenant_id
WEBHOOK_SECRET = "sim-webhook-secret"
SETS = {"lead": "leads", "contact": "contacts"}
KEYS = {"lead": "leadid", "contact": "contactid"}
_HOSTS = itertools.count(1)  # a fresh host per world: no client-side token cache is shared


class Crash(BaseException):
    """The worker died. A BaseException, so no `except Exception` in the engine eats it."""


async def _no_wait(seconds: float) -> None:
    """Retry back-off in simulated time: the wait is counted, never slept."""


def fast_retry() -> RetryPolicy:
    return RetryPolicy(
        attempts=6, base_delay=0.5, max_delay=30.0, max_total_wait=120.0, sleep=_no_wait
    )


@dataclass
class Fate:
    """Shared by every wire and the store gate of one engine run (a cycle or a delivery)."""

    crash_at: int | None = None  # die at this I/O call (1-based)
    crash_on: str = ""  # or at the first call whose description starts with this
    calls: int = 0
    dead: bool = False

    def tick(self, what: str) -> None:
        if self.dead:
            raise Crash(f"dead before {what}")
        self.calls += 1
        due = self.crash_at is not None and self.calls >= self.crash_at
        if due or (self.crash_on and what.startswith(self.crash_on)):
            self.dead = True
            raise Crash(f"crashed at I/O call {self.calls} ({what})")


@dataclass
class WriteSeen:
    run: str  # engine run label, e.g. "cycle-3a" or "webhook-1"
    owner: str  # cycle id (lease owner) or ""
    lease_holder: str | None  # who held the cycle lease when the write went out
    what: str


def is_write(system: str, request: httpx.Request) -> bool:
    path = request.url.path
    if system == "marketo":
        return (
            request.method == "POST"
            and path.startswith("/rest/")
            and (
                path.endswith("/leads.json")
                or "/activities/external" in path
                or path.endswith("/delete.json")
            )
        )
    if "/oauth2/" in path:
        return False
    return request.method in ("POST", "PATCH", "PUT", "DELETE")


class Wire(httpx.AsyncBaseTransport):
    """One engine run's view of one system: counts calls, crashes on cue, logs writes."""

    def __init__(self, world: SimWorld, system: str, fate: Fate, run: str) -> None:
        self.world, self.system, self.fate, self.run = world, system, fate, run
        self.inner = httpx.ASGITransport(app=world.apps[system])
        self.owner = ""  # the cycle id once known
        self.writes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.fate.tick(f"{self.system} {request.method} {request.url.path}")
        if is_write(self.system, request):
            self.writes += 1
            self.world.writes.append(
                WriteSeen(
                    self.run,
                    self.owner,
                    self.world.store.lease_holder(),
                    f"{self.system} {request.method} {request.url.path}",
                )
            )
        return await self.inner.handle_async_request(request)


class StoreGate:
    """The memory store as one engine run sees it: every call can be its last."""

    def __init__(self, store: MemoryStateStore, fate: Fate) -> None:
        self._store, self._fate = store, fate

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target) or name.startswith("_"):
            return target

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._fate.tick(f"store.{name}")
            return target(*args, **kwargs)

        return gated


@dataclass
class EngineRun:
    fate: Fate
    wires: list[Wire]
    store: StateStore
    token: Any
    clients: list[Any]

    @property
    def writes(self) -> int:
        return sum(w.writes for w in self.wires)

    def own(self, owner: str) -> None:
        for w in self.wires:
            w.owner = owner

    async def aclose(self) -> None:
        # Not Runtime.aclose: its store.close() would pass the gate of a dead run.
        for c in self.clients:
            await c.aclose()


@dataclass
class SimWorld:
    seed: int
    apps: dict[str, Any] = field(default_factory=dict)
    now: float = 1_800_000_000.0  # simulated wall clock of the store (leases)
    writes: list[WriteSeen] = field(default_factory=list)
    # (first call, how many calls) of a store outage armed for the next cycle
    pending_outage: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        mconf = MarketoConfig(rate_limit_calls=0, seed=self.seed)
        self.apps = {"marketo": marketo_app(mconf), "dynamics": dynamics_app(DynamicsConfig())}
        host = next(_HOSTS)
        self.marketo_url = f"http://mkto{host}.sim"
        self.dynamics_url = f"https://org{host}.sim"
        self.store = MemoryStateStore(clock=lambda: self.now)
        self.settings: Settings = load_settings(
            {
                "MARKETO_BASE_URL": self.marketo_url,
                "MARKETO_CLIENT_ID": "sync-app",
                "MARKETO_CLIENT_SECRET": "sync-app-secret",
                "DYNAMICS_URL": self.dynamics_url,
                "DYNAMICS_AUTHORITY_HOST": self.dynamics_url,
                "DYNAMICS_TENANT_ID": TENANT,
                "DYNAMICS_CLIENT_ID": "sync-app",
                "DYNAMICS_CLIENT_SECRET": "sync-app-secret",
                "SYNC_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "SYNC_HASH_KEY": f"simulation-hash-key-{self.seed:08d}",
            }
        )
        self._dyn_token: str | None = None
        actor_wire = {s: httpx.ASGITransport(app=a) for s, a in self.apps.items()}
        self.mkto_http = httpx.AsyncClient(
            transport=actor_wire["marketo"], base_url=self.marketo_url
        )
        self.dyn_http = httpx.AsyncClient(
            transport=actor_wire["dynamics"], base_url=self.dynamics_url
        )
        self._tokens: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.mkto_http.aclose()
        await self.dyn_http.aclose()

    # ---- the engine -------------------------------------------------------------
    def parts(self, run: str, crash_at: int | None = None, crash_on: str = "") -> EngineRun:
        """Wires, store gate and token provider for one engine run (one invocation)."""
        fate = Fate(crash_at, crash_on)
        wires = [Wire(self, "marketo", fate, run), Wire(self, "dynamics", fate, run)]
        token_http = httpx.AsyncClient(transport=wires[1], base_url=self.dynamics_url)

        async def token(refresh: bool) -> str:
            # The sync identity's client-credentials grant, as azure-identity sends it;
            # cached for the world as azure-identity caches it for the process.
            if self._dyn_token is None or refresh:
                r = await token_http.post(
                    f"/{TENANT}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "sync-app",
                        "client_secret": "sync-app-secret",
                        "scope": f"{self.dynamics_url}/.default",
                    },
                )
                r.raise_for_status()
                self._dyn_token = str(r.json()["access_token"])
            return self._dyn_token

        gate = cast(StateStore, StoreGate(self.store, fate))
        return EngineRun(fate, wires, gate, token, [token_http])

    async def runtime(self, er: EngineRun) -> Runtime:
        """A runtime as one timer invocation builds it, on this run's wires."""
        rt = await build_runtime(
            self.settings,
            marketo_transport=er.wires[0],
            dynamics_transport=er.wires[1],
            ca_bundle="",
            store=er.store,
            ensure_tables=False,
            retry=fast_retry(),
            dynamics_token=er.token,
        )
        er.clients.extend([rt.marketo, rt.dataverse])
        return rt

    def webhook_options(self, er: EngineRun) -> dict[str, Any]:
        """What handle_sync_person passes to build_runtime, on this run's wires."""
        return {
            "marketo_transport": er.wires[0],
            "dynamics_transport": er.wires[1],
            "store": er.store,
            "dynamics_token": er.token,
            "ca_bundle": "",
            # The webhook's own short policy, its waits counted in simulated time.
            "retry": RetryPolicy(
                attempts=3, base_delay=0.2, max_delay=1.0, max_total_wait=2.0, sleep=_no_wait
            ),
        }

    # ---- a marketer in Marketo (REST API, own identity) ------------------------------
    async def _mkto_token(self) -> str:
        if "mkto" not in self._tokens:
            r = await self.mkto_http.get(
                "/identity/oauth/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": "marketing-user",
                    "client_secret": "marketing-user-secret",
                },
            )
            r.raise_for_status()
            self._tokens["mkto"] = r.json()["access_token"]
        return self._tokens["mkto"]

    async def marketo(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        for _ in range(2):
            headers = {"Authorization": f"Bearer {await self._mkto_token()}"}
            r = await self.mkto_http.request(method, path, headers=headers, **kw)
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            codes = {str(e.get("code")) for e in body.get("errors") or []}
            if not codes & {"601", "602"}:
                break
            self._tokens.pop("mkto", None)  # a person's tool signs in again, too
        if not body.get("success"):
            raise AssertionError(f"marketer's call {method} {path} failed: {body}")
        return body

    async def m_edit(self, mid: int, values: dict[str, Any]) -> bool:
        body = await self.marketo(
            "POST",
            "/rest/v1/leads.json",
            json={"action": "updateOnly", "lookupField": "id", "input": [{"id": mid, **values}]},
        )
        return bool(body["result"][0]["status"] == "updated")

    async def m_create(self, values: dict[str, Any]) -> int:
        body = await self.marketo(
            "POST", "/rest/v1/leads.json", json={"action": "createDuplicate", "input": [values]}
        )
        assert body["result"][0]["status"] == "created", body
        return int(body["result"][0]["id"])

    async def m_delete(self, mid: int) -> None:
        await self.marketo("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": mid}]})

    async def marketo_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.mkto_http.request(method, f"/_emulator/{path}", **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    # ---- a salesperson in Dynamics (Web API, own identity) ---------------------------
    async def _dyn_user_token(self) -> str:
        if "dyn" not in self._tokens:
            r = await self.dyn_http.post(
                f"/{TENANT}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sales-user",
                    "client_secret": "sales-user-secret",
                    "scope": f"{self.dynamics_url}/.default",
                },
            )
            r.raise_for_status()
            self._tokens["dyn"] = r.json()["access_token"]
        return self._tokens["dyn"]

    async def dynamics(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {await self._dyn_user_token()}",
            "Accept": "application/json",
            "OData-Version": "4.0",
            **kw.pop("headers", {}),
        }
        return await self.dyn_http.request(method, f"/api/data/v9.2/{path}", headers=headers, **kw)

    async def d_create(self, entity: str, values: dict[str, Any]) -> str:
        r = await self.dynamics(
            "POST", SETS[entity], json=values, headers={"Prefer": "return=representation"}
        )
        assert r.status_code == 201, r.text
        return str(r.json()[KEYS[entity]]).lower()

    async def d_edit(self, entity: str, rid: str, values: dict[str, Any]) -> bool:
        # If-Match: * makes the PATCH an update only; without it Dataverse upserts and a
        # deleted record would come back to life, which no salesperson can do.
        r = await self.dynamics(
            "PATCH", f"{SETS[entity]}({rid})", json=values, headers={"If-Match": "*"}
        )
        if r.status_code in (404, 412):
            return False
        assert r.status_code == 204, r.text
        return True

    async def d_delete(self, entity: str, rid: str) -> None:
        r = await self.dynamics("DELETE", f"{SETS[entity]}({rid})")
        assert r.status_code in (204, 404), r.text

    async def dynamics_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.dyn_http.request(method, f"/_emulator/{path}", **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    # ---- reading the truth (for invariant checks) -------------------------------------
    def people(self) -> dict[int, dict[str, Any]]:
        store = self.apps["marketo"].state.emulator.store
        return {i: dict(p) for i, p in store.people.items()}

    def links(self) -> list[Link]:
        """Open links as stored (read past the fault gate: checking is not a call)."""
        rows = self.store.table("links")
        return [link_from_row(r) for r in rows if str(r["PartitionKey"]).startswith("m")]

    def records(self, entity: str) -> dict[str, dict[str, Any]]:
        rows = self.apps["dynamics"].state.stores[entity].rows
        return {str(k).lower(): dict(v) for k, v in rows.items()}


@contextmanager
def seeded_dynamics_ids(seed: int) -> Iterator[None]:
    """Dynamics record ids from the seed, so a replay creates the very same ids (and so
    the same page order and link keys)."""
    rng = random.Random(f"dynamics-ids-{seed}")
    original = dynamics_webapi.new_id
    dynamics_webapi.new_id = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    try:
        yield
    finally:
        dynamics_webapi.new_id = original
