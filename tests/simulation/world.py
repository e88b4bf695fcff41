"""The in-process simulation world: both emulators as ASGI apps, the state store, and
the real engine (clients, `Cycle`, the sync-person use case) wired to them.

No sockets and no server: the real httpx clients reach the emulators through
`httpx.ASGITransport` (the emulators need no lifespan start-up, so none is run), the
Dataverse token comes from the emulator's Entra endpoint over the same transport, and
the store is `MemoryStateStore` on a simulated clock (or Table Storage on Azurite: see
`tablestate`). Every engine call passes a `Wire` (HTTP) or `StoreGate` (state) that
counts it, can kill the engine at the N-th call or right after a given answer (a
`Crash`, like a worker dying: nothing after that point reaches the world), notes which
cycle wrote while holding which lease, and can let a salesperson save a record right
before the cycle's update of it.

People act through the vendors' public APIs (a marketer in Marketo, a salesperson in
Dynamics); faults go through the emulators' `/_emulator/` admin APIs. Invariant checks
read the emulators' state directly (reading is not acting, and it is fast).

Two clocks move in simulated time: `now`, the store's (leases), and `wall`, how far
Marketo's clock and the engine's Marketo-feed clock run ahead of real time. Marketo
pages its activity feeds by date and commits some activities late (the `production`
world profile's numbers), so an activity dated just before a cycle's read can appear
after it; only a shared wall clock makes "re-read the last two minutes" mean the same
instant to the engine and to Marketo.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol, cast

import httpx

import emulators.dynamics.actions as dynamics_actions
import emulators.dynamics.webapi as dynamics_webapi
from emulators.dynamics import DynamicsConfig
from emulators.dynamics import create_app as dynamics_app
from emulators.dynamics.world import WorldConfig
from emulators.marketo import MarketoConfig
from emulators.marketo import create_app as marketo_app
from emulators.marketo.activities import CHANGE_DATA_VALUE
from emulators.marketo.envelope import ConnectionDropped
from emulators.marketo.profiles import PRODUCTION
from sync_core import journal, marketofeed, pagesync
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
# Date-based activity paging and late commits, as the `production` world profile has
# them; its feeds' scan block scaled down (2,000 there) so that a burst of a few thousand
# activities already makes a read of several pages, at a quarter of the cost.
MARKETO_WORLD = {
    **{k: PRODUCTION[k] for k in ("paging_tokens", "late_share", "late_delay_s")},
    "activity_scan_block": 500,
}
_BATCH_PATCH = re.compile(r"PATCH \S*?/(leads|contacts)\(([0-9a-fA-F-]+)\) HTTP/1\.1\r\n")


@dataclass(frozen=True)
class Snapshot:
    """Both systems' people and records at one moment (read directly, as checks do)."""

    people: dict[int, dict[str, Any]]
    records: dict[str, dict[str, dict[str, Any]]]


class SimStore(StateStore, Protocol):
    """A state store with the hooks the simulation arms faults and reads the truth with
    (MemoryStateStore has them; tests.simulation.tablestate adds them to Table Storage)."""

    lease_conflicts: int  # this many next lease acquisitions lose an ETag race

    @property
    def TABLES(self) -> tuple[str, ...]: ...

    def table(self, name: str) -> list[dict[str, Any]]: ...
    def lease_holder(self, name: str = "cycle") -> str | None: ...
    def fail_calls(self, first: int, count: int = 1) -> None: ...
    def heal(self) -> None: ...


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
    crash_after: str = ""  # or at the call right after one whose answer is described so
    calls: int = 0
    dead: bool = False
    last_answer: str = ""  # the last call whose answer came back (its `crash_after` form)
    # (system, request) of each write the run was sending when it died: none went out,
    # but the engine, which journaled them first, cannot know that (Simulation.unanswered)
    unsent: list[tuple[str, httpx.Request]] = field(default_factory=list)
    # ... and each write whose answer came back, with the people whose answers a journal
    # note recorded: a write answered but not yet noted leaves the same "sent" note
    answered: list[tuple[str, httpx.Request]] = field(default_factory=list)
    noted: set[int] = field(default_factory=set)
    # id(request) -> what its records showed before anyone else's mid-write save: what
    # the run had read of them
    before: dict[int, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    # (system, URL, body) of each write sent -> its `before`: a resend of it (the client's
    # retry after an answer that never came) carries the read the first attempt carried;
    # the engine read the records once and its journal note says so, so a save made
    # between the attempts is an edit after that read, not part of it.
    first_attempt: dict[tuple[str, str, bytes], dict[Any, dict[str, Any]]] = field(
        default_factory=dict
    )
    # ... and each write whose answer was no answer (a 5xx, a 604, the connection cut):
    # it may have run, and the engine cannot tell, dead or alive
    unanswered: list[tuple[str, httpx.Request]] = field(default_factory=list)

    def tick(self, what: str) -> None:
        if self.dead:
            raise Crash(f"dead before {what}")
        self.calls += 1
        due = self.crash_at is not None and self.calls >= self.crash_at
        after = bool(self.crash_after) and self.last_answer.startswith(self.crash_after)
        if due or after or (self.crash_on and what.startswith(self.crash_on)):
            self.dead = True
            raise Crash(f"crashed at I/O call {self.calls} ({what})")


@dataclass
class WriteSeen:
    run: str  # engine run label, e.g. "cycle-3a" or "webhook-1"
    owner: str  # cycle id (lease owner) or ""
    lease_holder: str | None  # who held the cycle lease when the write went out
    what: str


def refused_by_rule(response: httpx.Response) -> bool:
    """A Dataverse business rule (plug-in) refused the save: 400 0x80040265."""
    if response.status_code != 400:
        return False
    try:
        return bool(response.json().get("error", {}).get("code") == "0x80040265")
    except ValueError:
        return False


def is_write(system: str, request: httpx.Request) -> bool:
    path = request.url.path
    if system == "marketo":
        return (
            request.method == "POST"
            # Get Leads by POST (long id lists) is a read: `_method=GET`.
            and request.url.params.get("_method") != "GET"
            and path.startswith("/rest/")
            and (
                path.endswith("/leads.json")
                or "/activities/external" in path
                or path.endswith("/delete.json")
                or path.endswith("/merge.json")
            )
        )
    if "/oauth2/" in path:
        return False
    return request.method in ("POST", "PATCH", "PUT", "DELETE")


def is_merge(system: str, request: httpx.Request) -> bool:
    """Marketo's Merge Leads, or Dataverse's Merge action."""
    path = request.url.path
    return request.method == "POST" and (
        path.endswith("/merge.json") if system == "marketo" else path.endswith("/Merge")
    )


def marketo_action(request: httpx.Request) -> str:
    """The action of a Sync Leads call ("createDuplicate", "updateOnly"...), else ""."""
    if request.method != "POST" or not request.url.path.endswith("/leads.json"):
        return ""
    try:
        return str(json.loads(request.content).get("action") or "")
    except (ValueError, AttributeError):
        return ""


async def marketo_answer(request: httpx.Request, response: httpx.Response) -> str:
    """A Marketo answer in `crash_after` form: "marketo created (createOnly)" when the
    call created a person (with any create action), else "marketo <action>"."""
    action = marketo_action(request)
    if action.startswith("create"):
        try:
            results = (json.loads(await response.aread()) or {}).get("result") or []
        except (ValueError, AttributeError):
            results = []
        if any(isinstance(r, dict) and r.get("status") == "created" for r in results):
            return f"marketo created ({action})"
    return f"marketo {action}"


def batch_patches(request: httpx.Request) -> list[tuple[str, str, dict[str, Any]]]:
    """(entity, record id, body) of every update inside a Dataverse $batch request."""
    if not request.url.path.endswith("/$batch"):
        return []
    text = request.content.decode()
    out = []
    entity_of = {v: k for k, v in SETS.items()}
    for m in _BATCH_PATCH.finditer(text):
        headers_end = text.find("\r\n\r\n", m.end() - 2)
        line_end = text.find("\r\n", headers_end + 4)
        try:
            body = json.loads(text[headers_end + 4 : line_end])
        except ValueError:
            body = {}
        out.append((entity_of[m.group(1)], m.group(2).lower(), body))
    return out


MidWrite = Callable[[httpx.Request], Awaitable[None]]


class Wire(httpx.AsyncBaseTransport):
    """One engine run's view of one system: counts calls, crashes on cue, logs writes,
    notes the writes left without an answer, and turns a connection the emulator cut
    mid-answer into what a client on a socket sees."""

    def __init__(
        self, world: SimWorld, system: str, fate: Fate, run: str, mid_write: MidWrite | None
    ) -> None:
        self.world, self.system, self.fate, self.run = world, system, fate, run
        self.inner = httpx.ASGITransport(app=world.apps[system])
        self.owner = ""  # the cycle id once known
        self.writes = 0
        # Someone else's edit, made once, right before this run's first Dataverse $batch.
        self.mid_write = mid_write

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self.fate.tick(f"{self.system} {request.method} {request.url.path}")
        except Crash:
            if is_write(self.system, request):
                self.fate.unsent.append((self.system, request))
            raise
        if is_write(self.system, request):
            key = (self.system, str(request.url), request.content)
            self.fate.before[id(request)] = self.fate.first_attempt.setdefault(
                key, self.world.targets(self.system, request)
            )
        if self.mid_write is not None and request.url.path.endswith("/$batch"):
            hook, self.mid_write = self.mid_write, None
            await hook(request)
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
        merging = self.world.on_merge is not None and is_merge(self.system, request)
        before = self.world.snapshot() if merging else None
        try:
            response = await self.inner.handle_async_request(request)
        except (ConnectionDropped, AssertionError) as exc:
            # The emulator cut the connection mid-answer: Marketo raises, Dataverse ends
            # its answer unfinished (which ASGITransport asserts against). Over a socket
            # the client sees the connection closed mid-body.
            self._lost(request)
            raise httpx.RemoteProtocolError(f"peer closed connection: {exc!r}") from exc
        if before is not None and self.world.on_merge is not None:
            self.world.on_merge(self.system, request, before)
        if is_write(self.system, request):
            body = await response.aread()
            if response.status_code >= 500 or (self.system == "marketo" and b'"604"' in body):
                self._lost(request)
            self.fate.answered.append((self.system, request))
        if self.fate.crash_after.startswith(self.system):
            self.fate.last_answer = (
                await marketo_answer(request, response)
                if self.system == "marketo"
                else f"dynamics {request.method} {request.url.path}"
            )
        return response

    def _lost(self, request: httpx.Request) -> None:
        """Note a write whose answer never came; count it if a lost-answer fault took it."""
        if not is_write(self.system, request):
            return
        self.fate.unanswered.append((self.system, request))
        if self.system in self.world.losing:
            self.world.answers_lost[self.system] += 1


class StoreGate:
    """The store as one engine run sees it: every call can be its last."""

    def __init__(self, store: SimStore, fate: Fate) -> None:
        self._store, self._fate = store, fate

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target) or name.startswith("_"):
            return target

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._fate.tick(f"store.{name}")
            result = target(*args, **kwargs)
            if name == "set_values" and args and args[0] == journal.KIND:
                return self._noting(result, args[1])
            return result

        return gated

    async def _noting(self, saving: Awaitable[Any], values: dict[str, str | None]) -> Any:
        out = await saving
        for raw in values.values():
            chunk = json.loads(raw) if raw else {}
            if chunk.get(journal.LANDED):
                self._fate.noted.update(int(k) for k in chunk if k != journal.LANDED)
        return out


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


def _refused_by_rule(r: httpx.Response) -> bool:
    """A business rule's refusal (the `validation-rule` fault): the user's save fails."""
    return r.status_code == 400 and "0x80040265" in r.text


@dataclass
class SimWorld:
    seed: int
    apps: dict[str, Any] = field(default_factory=dict)
    now: float = 1_800_000_000.0  # simulated wall clock of the store (leases)
    writes: list[WriteSeen] = field(default_factory=list)
    wall: float = 0.0  # seconds Marketo's clock and the engine's feed clock run ahead
    # (first call, how many calls) of a store outage armed for the next cycle
    pending_outage: tuple[int, int] | None = None
    # The state store on the simulated clock; None: the memory store.
    make_store: Callable[[Callable[[], float]], SimStore] | None = None
    regranted: bool = False  # a field-security grant taken from the sync user came back
    merge_granted: bool = False  # the sync's role has the Merge privilege (grant_merge)
    losing: set[str] = field(default_factory=set)  # systems armed to lose write answers
    answers_lost: Counter[str] = field(default_factory=Counter)  # ... and how many they did
    # Told of each Marketo merge an engine run sends (request, people just before it).
    on_merge: Callable[[str, httpx.Request, Snapshot], None] | None = None

    def __post_init__(self) -> None:
        mconf = MarketoConfig(rate_limit_calls=0, seed=self.seed, **MARKETO_WORLD)
        # The Dataverse world's dice (its lost answers) from the seed too; a front end's
        # hold before a 504 is real time there, and simulated time passes for free here.
        dconf = DynamicsConfig(fault_timeout_seconds=0.0, world=WorldConfig(seed=self.seed))
        self.apps = {"marketo": marketo_app(mconf), "dynamics": dynamics_app(dconf)}
        host = next(_HOSTS)
        self.marketo_url = f"http://mkto{host}.sim"
        self.dynamics_url = f"https://org{host}.sim"
        make = self.make_store or (lambda clock: MemoryStateStore(clock=clock))
        self.store: SimStore = make(lambda: self.now)
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

    async def pass_time(self, seconds: float) -> None:
        """Wall-clock time passes, for Marketo and for the engine's feed reads alike."""
        self.wall += seconds
        await self.marketo_admin("POST", "clock", json={"advance_s": seconds})

    async def commits_lag(self, late_share: float) -> None:
        """Under load (a big send), a larger share of Marketo's commits lags behind their
        dates, until `campaign_burst` ends."""
        await self.marketo_admin("POST", "config", json={"late_share": late_share})

    async def campaign_burst(self, activities: int, seconds: float) -> None:
        """A big send logs about `activities` background activities (email sends,
        deliveries, opens...) over the next `seconds`, by the emulator's own noise
        generator run for exactly that span of its clock (not on every API call, whose
        real-time moments would change the count), then the load is gone."""
        emu = self.apps["marketo"].state.emulator
        rate = activities / seconds * 3600
        await self.marketo_admin("POST", "config", json={"noise_per_hour": rate})
        start = emu.now()
        emu.world.noise_next = start
        await self.pass_time(seconds)
        emu.world.catch_up(start + seconds, emu.log, emu.store)
        normal = {"noise_per_hour": 0.0, "late_share": MARKETO_WORLD["late_share"]}
        await self.marketo_admin("POST", "config", json=normal)

    def late_changes(self) -> int:
        """Field changes Marketo committed after their date (invisible to feeds meanwhile)."""
        log = self.apps["marketo"].state.emulator.log
        return sum(1 for a in log.items if a.type_id == CHANGE_DATA_VALUE and a.visible_ms)

    # ---- the engine -------------------------------------------------------------
    def parts(
        self,
        run: str,
        crash_at: int | None = None,
        crash_on: str = "",
        crash_after: str = "",
        mid_write: MidWrite | None = None,
    ) -> EngineRun:
        """Wires, store gate and token provider for one engine run (one invocation)."""
        fate = Fate(crash_at, crash_on, crash_after)
        wires = [
            Wire(self, "marketo", fate, run, None),
            Wire(self, "dynamics", fate, run, mid_write),
        ]
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

    async def m_merge(self, winner: int, loser: int) -> None:
        """Merge Leads: the winner keeps its values, its empty fields take the loser's."""
        await self.marketo(
            "POST", f"/rest/v1/leads/{winner}/merge.json", params={"leadIds": str(loser)}
        )

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
        rid = await self.d_try_create(entity, values)
        assert rid is not None, f"a business rule refused a new {entity}"
        return rid

    async def d_try_create(self, entity: str, values: dict[str, Any]) -> str | None:
        """The new record's id, or None when a business rule refused the save."""
        r = await self.dynamics(
            "POST", SETS[entity], json=values, headers={"Prefer": "return=representation"}
        )
        if refused_by_rule(r):
            return None
        assert r.status_code == 201, r.text
        return str(r.json()[KEYS[entity]]).lower()

    async def d_edit(self, entity: str, rid: str, values: dict[str, Any]) -> bool:
        # If-Match: * makes the PATCH an update only; without it Dataverse upserts and a
        # deleted record would come back to life, which no salesperson can do.
        r = await self.dynamics(
            "PATCH", f"{SETS[entity]}({rid})", json=values, headers={"If-Match": "*"}
        )
        if r.status_code in (404, 412) or refused_by_rule(r):
            return False  # gone, or a business rule refused the salesperson's save
        assert r.status_code == 204, r.text
        return True

    async def d_delete(self, entity: str, rid: str) -> None:
        r = await self.dynamics("DELETE", f"{SETS[entity]}({rid})")
        assert r.status_code in (204, 404), r.text

    async def d_merge(self, entity: str, master: str, subordinate: str) -> bool:
        """Merge as a salesperson runs it from the form: no parenting checks, nothing
        chosen from the subordinate (Dataverse fills the master's empty columns)."""
        kind = f"Microsoft.Dynamics.CRM.{entity}"
        key = KEYS[entity]
        body = {
            "Target": {"@odata.type": kind, key: master},
            "Subordinate": {"@odata.type": kind, key: subordinate},
            "UpdateContent": {"@odata.type": kind},
            "PerformParentingChecks": False,
        }
        r = await self.dynamics("POST", "Merge", json=body)
        if _refused_by_rule(r):
            return False  # a validation rule turned on in this world refuses the master
        assert r.status_code == 204, r.text
        return True

    async def d_qualify(self, lead: str, *, account: bool) -> str | None:
        """QualifyLead creating a contact (and maybe an account): the contact's id (None
        when a validation rule turned on in this world refuses the contact)."""
        body = {
            "CreateAccount": account,
            "CreateContact": True,
            "CreateOpportunity": False,
            "Status": 3,  # Qualified
        }
        r = await self.dynamics(
            "POST", f"leads({lead})/Microsoft.Dynamics.CRM.QualifyLead", json=body
        )
        if _refused_by_rule(r):
            return None
        assert r.status_code == 200, r.text
        made = [v["contactid"] for v in r.json()["value"] if "contactid" in v]
        return str(made[0]).lower()

    async def grant_merge(self) -> None:
        """What infra/README.md has an admin give the sync's role: Merge, and Share."""
        privileges = [{"privilege": "prvMerge"}] + [
            {"table": table, "privilege": "Share", "depth": "Organization"}
            for table in ("contact", "lead")
        ]
        for grant in privileges:
            await self.dynamics_admin(
                "PUT", "security/privileges", json={"user": "sync-app", **grant}
            )
        self.merge_granted = True

    async def dynamics_admin(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.dyn_http.request(method, f"/_emulator/{path}", **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    async def grant_field(self, entity: str, column: str) -> None:
        """An admin gives the sync user a secured column back (read, create, update)."""
        grant = {"read": True, "create": True, "update": True}
        await self.dynamics_admin(
            "PUT",
            "field-security",
            json={"table": entity, "column": column, "permissions": {"sync-app": grant}},
        )
        self.regranted = True

    def inaccessible(self) -> set[tuple[str, str]]:
        """(table, column) of the mapped columns the sync user cannot read or update now
        (field security): the engine leaves those out, so they may disagree."""
        state = self.apps["dynamics"].state
        user = state.users_by_client["sync-app"]
        out = set()
        for entity in SETS:
            for col in state.tables[entity].columns.values():
                perm = state.permission(user, entity, col.name)
                if col.secured and not (perm.read and perm.update):
                    out.add((entity, col.name))
        return out

    # ---- reading the truth (for invariant checks) -------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot(self.people(), {e: self.records(e) for e in SETS})

    def people(self) -> dict[int, dict[str, Any]]:
        store = self.apps["marketo"].state.emulator.store
        return {i: dict(p) for i, p in store.people.items()}

    def links(self) -> list[Link]:
        """Open links as stored (read past the fault gate: checking is not a call)."""
        rows = self.store.table("links")
        return [link_from_row(r) for r in rows if str(r["PartitionKey"]).startswith("m")]

    def targets(self, system: str, request: httpx.Request) -> dict[Any, dict[str, Any]]:
        """What the records a write goes to show now: (entity, id) -> row for a Dataverse
        $batch, person id -> person for a Marketo update."""
        if system == "dynamics":
            return {
                (entity, rid): dict(self.records(entity).get(rid) or {})
                for entity, rid, _ in batch_patches(request)
            }
        if marketo_action(request) != "updateOnly":
            return {}
        people = self.people()
        ids = [int(r.get("id", 0)) for r in json.loads(request.content).get("input", [])]
        return {mid: dict(people.get(mid) or {}) for mid in ids}

    def records(self, entity: str) -> dict[str, dict[str, Any]]:
        rows = self.apps["dynamics"].state.stores[entity].rows
        return {str(k).lower(): dict(v) for k, v in rows.items()}


@contextmanager
def shared_wall_clock(world: SimWorld) -> Iterator[None]:
    """The engine's Marketo-feed clock on the world's wall clock, as Marketo's is: the
    overlap window and the paging tokens it asks for name the instants Marketo means."""

    class Wall(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Wall:
            real = datetime.now(tz) + timedelta(seconds=world.wall)
            return cls.fromtimestamp(real.timestamp(), tz)

    original = marketofeed.datetime
    marketofeed.datetime = Wall  # type: ignore[misc]
    try:
        yield
    finally:
        marketofeed.datetime = original  # type: ignore[misc]


@contextmanager
def seeded_dynamics_ids(seed: int) -> Iterator[None]:
    """Dynamics record ids from the seed, so a replay creates the very same ids (and so
    the same page order and link keys)."""
    rng = random.Random(f"dynamics-ids-{seed}")
    # Records come from the Web API's creates and from QualifyLead (an action of its own).
    modules = (dynamics_webapi, dynamics_actions)
    originals = [m.new_id for m in modules]
    for m in modules:
        m.new_id = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    try:
        yield
    finally:
        for m, original in zip(modules, originals, strict=True):
            m.new_id = original


@contextmanager
def sliced_pages(seed: int) -> Iterator[None]:
    """The page sync's slice size from the seed. At 3,000 records a slice never splits a
    simulated world (tens of records): three seeds in four slice it into a few records
    each, so a page's slices are written while the next is planned, faults and all."""
    kept = pagesync.SLICE
    pagesync.SLICE = (2, 3, 5, kept)[seed % 4]
    try:
        yield
    finally:
        pagesync.SLICE = kept
