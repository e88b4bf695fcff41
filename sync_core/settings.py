"""Settings read from environment variables (the same names are Azure app settings).

One pydantic-settings model, validated at start-up, so a missing or malformed value
stops the process with a message naming the setting instead of failing mid-cycle.
Secrets are `SecretStr`: they never show up in logs, reprs or error messages.

A value that is still a Key Vault reference (`@Microsoft.KeyVault(...)`) is rejected: App
Service hands the reference text to the app unchanged when it cannot resolve it (for example
before a new role assignment has propagated), and the sync would otherwise run with that
text as its secret, hash key or URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync_core.errors import SettingsError  # callers still import it from here

DEFAULT_MAPPING_FILE = Path(__file__).with_name("mapping.toml")

# App Service's marker for a Key Vault reference, compared case-insensitively.
KEY_VAULT_REFERENCE = "@microsoft.keyvault("
UNRESOLVED_REFERENCE = (
    "is an unresolved Key Vault reference: the platform passed the @Microsoft.KeyVault(...) "
    "text through instead of the value. Check that the identity named by the app's "
    "keyVaultReferenceIdentity has Key Vault Secrets User on the vault and that the secret "
    "exists, then refresh the app's Key Vault references or restart the app "
    "(infra/README.md, 'Key Vault references')"
)


def _env(name: str) -> AliasChoices:
    # Exact, upper-case names only: the same string an admin types into the portal.
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", populate_by_name=False, frozen=True
    )

    marketo_base_url: str = Field(validation_alias=_env("MARKETO_BASE_URL"))
    marketo_client_id: str = Field(validation_alias=_env("MARKETO_CLIENT_ID"), min_length=1)
    marketo_client_secret: SecretStr = Field(validation_alias=_env("MARKETO_CLIENT_SECRET"))

    dynamics_url: str = Field(validation_alias=_env("DYNAMICS_URL"))
    dynamics_tenant_id: str = Field(validation_alias=_env("DYNAMICS_TENANT_ID"), min_length=1)
    # With a secret: an app registration. Without: the Function App's managed identity,
    # whose client id (user-assigned) goes in DYNAMICS_CLIENT_ID.
    dynamics_client_id: str = Field("", validation_alias=_env("DYNAMICS_CLIENT_ID"))
    dynamics_client_secret: SecretStr = Field(
        SecretStr(""), validation_alias=_env("DYNAMICS_CLIENT_SECRET")
    )
    # Sovereign clouds and the local emulator use a different Entra authority.
    dynamics_authority_host: str = Field(
        "https://login.microsoftonline.com", validation_alias=_env("DYNAMICS_AUTHORITY_HOST")
    )

    sync_storage_connection: SecretStr = Field(
        SecretStr("UseDevelopmentStorage=true"), validation_alias=_env("SYNC_STORAGE_CONNECTION")
    )
    # When set, Table Storage is reached with the managed identity and the connection
    # string is ignored (shared-key access is disabled on the deployed account).
    sync_storage_account_url: str = Field("", validation_alias=_env("SYNC_STORAGE_ACCOUNT_URL"))
    sync_table_prefix: str = Field(
        "mktosync",
        validation_alias=_env("SYNC_TABLE_PREFIX"),
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,40}$",
    )

    sync_mapping_file: Path = Field(
        DEFAULT_MAPPING_FILE, validation_alias=_env("SYNC_MAPPING_FILE")
    )
    sync_webhook_secret: SecretStr = Field(
        SecretStr(""), validation_alias=_env("SYNC_WEBHOOK_SECRET")
    )
    # Keys the hashes that stand in for personal data in the base. Empty: one is
    # generated on first run and kept in the state table.
    sync_hash_key: SecretStr = Field(SecretStr(""), validation_alias=_env("SYNC_HASH_KEY"))

    sync_schedule: str = Field("0 */5 * * * *", validation_alias=_env("SYNC_SCHEDULE"))
    sync_marketo_daily_quota: int = Field(
        50_000, validation_alias=_env("SYNC_MARKETO_DAILY_QUOTA"), gt=0
    )
    # The background cycle stops once this share of the daily quota is used, keeping
    # the rest for the real-time webhook and other integrations.
    sync_marketo_quota_share: float = Field(
        0.8, validation_alias=_env("SYNC_MARKETO_QUOTA_SHARE"), gt=0, le=1
    )
    sync_lease_seconds: int = Field(900, validation_alias=_env("SYNC_LEASE_SECONDS"), ge=30)
    # A cycle stops taking new pages after this long and the next one continues where it
    # stopped, so a first load larger than one function run still completes.
    sync_cycle_budget_seconds: float = Field(
        480.0, validation_alias=_env("SYNC_CYCLE_BUDGET_SECONDS"), ge=0
    )
    sync_dynamics_page_size: int = Field(
        5000, validation_alias=_env("SYNC_DYNAMICS_PAGE_SIZE"), ge=1, le=5000
    )
    sync_http_timeout_seconds: float = Field(
        30.0, validation_alias=_env("SYNC_HTTP_TIMEOUT_SECONDS"), gt=0
    )
    # Marketo can make an activity visible after later-dated ones: each feed read starts
    # this far behind the previous read (covers that delay plus clock skew).
    sync_marketo_feed_overlap_seconds: float = Field(
        120.0, validation_alias=_env("SYNC_MARKETO_FEED_OVERLAP_SECONDS"), ge=0, le=86400
    )

    # The mass-change guard: one cycle holds a field's writes in one direction when they
    # exceed this many records, or this share of linked records (whichever is lower,
    # never below 100). 0 switches the guard off.
    sync_mass_change_limit: int = Field(
        5000, validation_alias=_env("SYNC_MASS_CHANGE_LIMIT"), ge=0
    )
    sync_mass_change_share: float = Field(
        0.25, validation_alias=_env("SYNC_MASS_CHANGE_SHARE"), gt=0, le=1
    )

    # Compressed-time test worlds and benchmarks only: every window the clients pace by
    # and every wait they sit out is multiplied by this. Leave it at 1 in Azure.
    sync_time_scale: float = Field(1.0, validation_alias=_env("SYNC_TIME_SCALE"), gt=0, le=1)

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_key_vault_reference(cls, value: Any) -> Any:
        # Every setting, not only the secrets: any app setting can be a reference. The
        # message never contains the value.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and KEY_VAULT_REFERENCE in text.lower():
            raise ValueError(UNRESOLVED_REFERENCE)
        return value

    @field_validator("marketo_base_url", "dynamics_url", "dynamics_authority_host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or value[-3:] == "://":
            raise ValueError("must be an absolute http(s) URL such as https://host.example.com")
        return value

    @field_validator("sync_storage_account_url")
    @classmethod
    def _optional_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError(
                "must be empty or the table endpoint, e.g. https://acct.table.core.windows.net"
            )
        return value

    @property
    def uses_managed_identity(self) -> bool:
        return not self.dynamics_client_secret.get_secret_value()


ENV_NAMES: tuple[str, ...] = tuple(
    str(f.validation_alias.choices[0])  # type: ignore[union-attr]
    for f in Settings.model_fields.values()
)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate settings; raise SettingsError naming every bad setting."""
    try:
        if environ is None:
            return Settings()  # type: ignore[call-arg]
        return Settings.model_validate(environ)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "missing":
                what = "is required but not set"
            else:
                what = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name} {what}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
