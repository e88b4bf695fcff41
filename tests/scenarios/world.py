"""A running world for end-to-end scenarios: both emulators over real HTTP (Dynamics
over TLS, as azure-identity requires), Azurite, and the sync configured against them.

People act through the vendors' public APIs with their own identities: a marketer
(`marketing-user`) edits Marketo people, a salesperson (`sales-user`) edits Dynamics
records. Only set-up and fault injection use the emulators' `/_emulator/` admin API.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from emulators.actors import People
from emulators.dynamics import DynamicsConfig
from emulators.dynamics import create_app as dynamics_app
from emulators.dynamics.profiles import apply_profile
from emulators.marketo import MarketoConfig
from emulators.marketo import create_app as marketo_app
from emulators.marketo.profiles import apply_profile as apply_marketo_profile
from emulators.stack import sync_env
from sync_core.admin.setup import run_setup
from sync_core.entrypoints import run_cycle
from sync_core.settings import Settings, load_settings
from sync_core.tablestore import TableStateStore
from tests.support.blocking import BlockingStore
from tests.support.servers import running_server

TIME_SCALE = 0.01  # under SCENARIO_PROFILE: one real second is 10 ms here


@dataclass(kw_only=True)
class World(People):
    storage: str
    prefix: str
    extra_env: dict[str, str] = field(default_factory=dict)
    # The in-process emulator apps, for the few changes no admin call offers.
    apps: dict[str, Any] = field(default_factory=dict, repr=False)
    # Under a production-like profile: how far Marketo's clock moves before each cycle, so
    # an edit made just now is as old as it is when a 5-minute cycle meets it (past the
    # late-commit delay; a later commit is the next cycle's, as in production).
    settle_s: float = 0.0

    # ---- the sync ------------------------------------------------------------
    def env(self) -> dict[str, str]:
        base = sync_env(self.storage, self.marketo_url, self.dynamics_url, self.ca_bundle)
        return {
            **base,
            "DYNAMICS_TENANT_ID": self.tenant,
            "SYNC_TABLE_PREFIX": self.prefix,
            "SYNC_WEBHOOK_SECRET": "test-webhook-secret",
            **self.extra_env,
        }

    def settings(self) -> Settings:
        return load_settings(self.env())

    def setup(self) -> None:
        """What an admin runs once: `python -m sync_core setup` (tables, activity types)."""
        asyncio.run(run_setup(self.settings()))

    def cycle(self) -> dict[str, Any]:
        if self.settle_s:
            self.marketo_admin("POST", "clock", json={"advance_s": self.settle_s})
        summary = asyncio.run(run_cycle(self.settings(), ca_bundle=self.ca_bundle))
        assert summary["outcome"] in ("succeeded", "skipped", "stopped", "partial"), summary
        return summary

    def store(self) -> Any:
        """The sync's state tables, read and written call by call (a BlockingStore)."""
        return BlockingStore(TableStateStore.from_connection_string(self.storage, self.prefix))


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
    # A test that built its own world keeps it; the others may run in a harder one.
    profile = "exact" if dynamics_config else os.environ.get("SCENARIO_PROFILE", "exact")
    if profile != "exact":
        # The same scenarios in a world as slow, limited and faulty as production, time
        # compressed: every duration the emulators spend or enforce is scaled.
        seed = int(os.environ.get("SCENARIO_SEED", "1"))
        apply_profile(dconf.world, profile, seed=seed, time_scale=TIME_SCALE,
                      overrides={"fault_users": ["sync-app"]})  # fmt: skip
        apply_marketo_profile(mconf, profile)
        mconf.seed, mconf.time_scale = seed, TIME_SCALE
        mconf.fault_users = ["sync-app"]  # faults aim at the sync, not the marketer's tool
        settle = mconf.late_delay_s * TIME_SCALE
        # The admin sets the feed overlap past the instance's late-commit delay (the
        # default, 120 s, covers production's 60 s; hostile's 300 s needs more).
        overlap = max(120.0, 1.2 * mconf.late_delay_s) * TIME_SCALE
        env = {
            "SYNC_MARKETO_FEED_OVERLAP_SECONDS": str(overlap),
            "SYNC_TIME_SCALE": str(TIME_SCALE),
        }  # the sync's own waits, compressed too
    else:
        settle, env = 0.0, {}
    apps = {"marketo": marketo_app(mconf), "dynamics": dynamics_app(dconf)}
    mkto = stack.enter_context(running_server(apps["marketo"]))
    dyn = stack.enter_context(
        running_server(apps["dynamics"], ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    )
    return World(
        marketo_url=mkto,
        dynamics_url=dyn,
        ca_bundle=str(bundle),
        storage=storage,
        prefix="s" + uuid.uuid4().hex[:12],
        tenant=dconf.tenant_id,
        apps=apps,
        settle_s=settle,
        extra_env=env,
    )
