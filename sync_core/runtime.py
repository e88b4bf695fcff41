"""Build the engine's parts (clients, store, mapping, hasher) from Settings.

The only place that knows how production authenticates: Marketo client credentials,
Entra ID for Dataverse (a client secret, or the managed identity when the secret is
empty) and Table Storage by connection string or managed identity. Tests and the CLI
use the same path, only injecting transports or a CA bundle.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
from azure.data.tables import TableServiceClient

from sync_core.dataverse import DataverseClient, TokenProvider
from sync_core.errors import AuthFailed, ConfigError
from sync_core.http import RetryPolicy, SlidingWindow
from sync_core.mapping import Mapping, load_mapping
from sync_core.marketo import MarketoClient
from sync_core.pacing import ExecutionPacer
from sync_core.planner import Hasher
from sync_core.settings import Settings
from sync_core.state import StateStore
from sync_core.tablestore import TableStateStore, transport_options

# Standard variables naming a CA bundle, first match wins (see ca_bundle_from_env).
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def ca_bundle_from_env(environ: Any = None) -> str | None:
    """The CA bundle named by REQUESTS_CA_BUNDLE or SSL_CERT_FILE, else None.

    The two HTTP stacks read different variables (requests, under azure-identity and
    Table Storage: REQUESTS_CA_BUNDLE; httpx, under the API clients: SSL_CERT_FILE).
    Resolving one here and handing it to both means a private CA (a TLS-inspecting
    proxy, a private endpoint, a test server) needs one app setting, not two that must
    agree. The bundle replaces the default trust store, so it must also hold the
    public roots when Marketo or Entra ID are reached through it.
    """
    env = os.environ if environ is None else environ
    for name in CA_BUNDLE_VARS:
        value = str(env.get(name) or "").strip()
        if value:
            return value
    return None


@lru_cache(maxsize=8)
def _credential(
    tenant: str, client_id: str, secret: str, authority: str, verify: str | None
) -> Any:
    # Cached per process so azure-identity's own token cache survives across invocations.
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    kwargs: dict[str, Any] = {"connection_verify": verify} if verify else {}
    if secret:
        return ClientSecretCredential(
            tenant,
            client_id,
            secret,
            authority=authority,
            disable_instance_discovery=not authority.endswith("login.microsoftonline.com"),
            **kwargs,
        )
    return ManagedIdentityCredential(client_id=client_id or None)


def token_provider(settings: Settings, ca_bundle: str | None = None) -> Any:
    credential = _credential(
        settings.dynamics_tenant_id,
        settings.dynamics_client_id,
        settings.dynamics_client_secret.get_secret_value(),
        settings.dynamics_authority_host,
        ca_bundle,
    )
    scope = f"{settings.dynamics_url}/.default"

    async def token(refresh: bool) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            # get_token blocks (requests); azure-identity caches and refreshes it.
            result = await asyncio.to_thread(credential.get_token, scope)
        except ClientAuthenticationError as exc:
            raise AuthFailed(f"Entra ID refused a token for {scope}: {exc.message}") from exc
        return str(result.token)

    return token


@dataclass
class Runtime:
    settings: Settings
    mapping: Mapping
    store: StateStore
    marketo: MarketoClient
    dataverse: DataverseClient
    hasher: Hasher
    owns_store: bool = True  # False when the worker's shared store is lent to this run

    async def aclose(self) -> None:
        await self.marketo.aclose()
        await self.dataverse.aclose()
        if self.owns_store:
            self.store.close()


def build_store(settings: Settings) -> StateStore:
    prefix = settings.sync_table_prefix
    if settings.sync_storage_account_url:
        from azure.identity import DefaultAzureCredential

        return TableStateStore.from_account_url(
            settings.sync_storage_account_url, DefaultAzureCredential(), prefix
        )
    conn = settings.sync_storage_connection.get_secret_value()
    return TableStateStore.from_connection_string(conn, prefix)


def table_service(settings: Settings, **client_options: Any) -> TableServiceClient:
    """The Table Storage client the state store uses (managed identity when
    SYNC_STORAGE_ACCOUNT_URL is set, else the connection string); `client_options`
    reach azure-data-tables (retries, timeouts) for a caller that must answer fast."""
    if settings.sync_storage_account_url:
        from azure.identity import DefaultAzureCredential

        return TableServiceClient(
            endpoint=settings.sync_storage_account_url,
            credential=DefaultAzureCredential(),
            **transport_options(),
            **client_options,
        )
    conn = settings.sync_storage_connection.get_secret_value()
    return TableServiceClient.from_connection_string(conn, **transport_options(), **client_options)


def resolve_ca_bundle(ca_bundle: str | None = None) -> str | None:
    """`ca_bundle`, else the one the standard variables name; a named file must exist
    (a typo would otherwise surface as a TLS failure far from its cause)."""
    if ca_bundle is None:
        ca_bundle = ca_bundle_from_env()
    if ca_bundle and not os.path.exists(ca_bundle):
        raise ConfigError(f"CA bundle {ca_bundle} (from {'/'.join(CA_BUNDLE_VARS)}) does not exist")
    return ca_bundle


def build_marketo(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    limiter: SlidingWindow | None = None,
) -> MarketoClient:
    """The Marketo client, authenticated with the LaunchPoint client credentials.
    `timeout` overrides SYNC_HTTP_TIMEOUT_SECONDS (a diagnosis that must answer fast)."""
    return MarketoClient(
        settings.marketo_base_url,
        settings.marketo_client_id,
        settings.marketo_client_secret.get_secret_value(),
        transport=transport,
        timeout=settings.sync_http_timeout_seconds if timeout is None else timeout,
        retry=retry,
        limiter=limiter,
        time_scale=settings.sync_time_scale,
    )


def build_dataverse(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    ca_bundle: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    token: TokenProvider | None = None,
    limiter: SlidingWindow | None = None,
    pacer: ExecutionPacer | None = None,
) -> DataverseClient:
    """The Dataverse client, authenticated through Entra ID unless `token` replaces the
    credential (an in-process ASGI app azure-identity cannot reach, or a probe that must
    go without a token)."""
    ca_bundle = resolve_ca_bundle(ca_bundle)
    return DataverseClient(
        settings.dynamics_url,
        token or token_provider(settings, ca_bundle),
        transport=transport,
        # An SSLContext, not a path: httpx deprecates `verify=<str>`.
        verify=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True,
        timeout=settings.sync_http_timeout_seconds if timeout is None else timeout,
        retry=retry,
        page_size=settings.sync_dynamics_page_size,
        limiter=limiter,
        pacer=pacer,
        time_scale=settings.sync_time_scale,
    )


def build_clients(
    settings: Settings,
    *,
    marketo_transport: httpx.AsyncBaseTransport | None = None,
    dynamics_transport: httpx.AsyncBaseTransport | None = None,
    ca_bundle: str | None = None,
    retry: RetryPolicy | None = None,
    dynamics_token: TokenProvider | None = None,
    marketo_limiter: SlidingWindow | None = None,
    dataverse_limiter: SlidingWindow | None = None,
    pacer: ExecutionPacer | None = None,
) -> tuple[MarketoClient, DataverseClient]:
    """Both API clients, authenticated as production does (CA bundle from the standard
    variables unless given). `dynamics_token` replaces the Entra ID credential, for a
    caller whose transport azure-identity cannot use (an in-process ASGI app)."""
    # Checked before either client exists: a missing bundle leaves no client unclosed.
    ca_bundle = resolve_ca_bundle(ca_bundle)
    marketo = build_marketo(
        settings, transport=marketo_transport, retry=retry, limiter=marketo_limiter
    )
    dataverse = build_dataverse(
        settings,
        transport=dynamics_transport,
        ca_bundle=ca_bundle,
        retry=retry,
        token=dynamics_token,
        limiter=dataverse_limiter,
        pacer=pacer,
    )
    return marketo, dataverse


@asynccontextmanager
async def open_clients(
    settings: Settings, *, ca_bundle: str | None = None, retry: RetryPolicy | None = None
) -> AsyncIterator[tuple[MarketoClient, DataverseClient]]:
    """Both API clients for the length of a `with`, without Table Storage (reading
    metadata must not need the state store)."""
    marketo, dataverse = build_clients(settings, ca_bundle=ca_bundle, retry=retry)
    try:
        yield marketo, dataverse
    finally:
        await marketo.aclose()
        await dataverse.aclose()


async def build_runtime(
    settings: Settings,
    *,
    marketo_transport: httpx.AsyncBaseTransport | None = None,
    dynamics_transport: httpx.AsyncBaseTransport | None = None,
    ca_bundle: str | None = None,
    store: StateStore | None = None,
    ensure_tables: bool = True,
    retry: RetryPolicy | None = None,
    dynamics_token: TokenProvider | None = None,
) -> Runtime:
    marketo, dataverse = build_clients(
        settings,
        marketo_transport=marketo_transport,
        dynamics_transport=dynamics_transport,
        ca_bundle=ca_bundle,
        retry=retry,
        dynamics_token=dynamics_token,
    )
    mapping = load_mapping(settings.sync_mapping_file)
    store = store or build_store(settings)
    if ensure_tables:
        await store.ensure_tables()
    hasher = Hasher(await store.hash_key(settings.sync_hash_key.get_secret_value()))
    return Runtime(settings, mapping, store, marketo, dataverse, hasher)


def new_cycle(rt: Runtime) -> Any:
    from sync_core.cycle import Cycle

    s = rt.settings
    return Cycle(
        rt.mapping,
        rt.store,
        rt.marketo,
        rt.dataverse,
        rt.hasher,
        lease_seconds=s.sync_lease_seconds,
        time_budget=s.sync_cycle_budget_seconds,
        daily_quota=s.sync_marketo_daily_quota,
        quota_share=s.sync_marketo_quota_share,
        feed_overlap=s.sync_marketo_feed_overlap_seconds,
        mass_change_limit=s.sync_mass_change_limit,
        mass_change_share=s.sync_mass_change_share,
    )
