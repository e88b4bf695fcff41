"""Settings: fail fast naming the setting, never leak a secret."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from sync_core.realtime import handle_sync_person
from sync_core.settings import ENV_NAMES, SettingsError, load_settings

# What App Service leaves in a setting when it cannot resolve the reference.
UNRESOLVED = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/sync-hash-key)"

GOOD = {
    "MARKETO_BASE_URL": "https://123-ABC-456.mktorest.com/",
    "MARKETO_CLIENT_ID": "id",
    "MARKETO_CLIENT_SECRET": "very-secret-marketo",
    "DYNAMICS_URL": "https://org.crm.dynamics.com",
    "DYNAMICS_TENANT_ID": "tenant",
}


def test_minimal_settings_and_defaults():
    s = load_settings(GOOD)
    assert s.marketo_base_url == "https://123-ABC-456.mktorest.com"
    assert s.uses_managed_identity
    assert s.sync_schedule == "0 */5 * * * *"
    assert s.sync_storage_connection.get_secret_value() == "UseDevelopmentStorage=true"


def test_missing_settings_are_named():
    with pytest.raises(SettingsError) as err:
        load_settings({"MARKETO_BASE_URL": "https://x"})
    for name in (
        "MARKETO_CLIENT_ID",
        "MARKETO_CLIENT_SECRET",
        "DYNAMICS_URL",
        "DYNAMICS_TENANT_ID",
    ):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DYNAMICS_URL", "org.crm.dynamics.com"),
        ("SYNC_MARKETO_QUOTA_SHARE", "1.5"),
        ("SYNC_MARKETO_DAILY_QUOTA", "lots"),
        ("SYNC_TABLE_PREFIX", "bad-prefix!"),
        ("SYNC_STORAGE_ACCOUNT_URL", "acct.table.core.windows.net"),
    ],
)
def test_malformed_setting_is_named_and_value_not_echoed(name, value):
    with pytest.raises(SettingsError) as err:
        load_settings({**GOOD, name: value, "MARKETO_CLIENT_SECRET": "hunter2-secret"})
    assert name in str(err.value)
    assert "hunter2-secret" not in str(err.value)


def test_secrets_never_in_repr():
    s = load_settings({**GOOD, "DYNAMICS_CLIENT_SECRET": "dyn-secret", "SYNC_WEBHOOK_SECRET": "wh"})
    text = repr(s) + str(s) + str(s.model_dump())
    for secret in ("very-secret-marketo", "dyn-secret"):
        assert secret not in text
    assert not s.uses_managed_identity


def test_every_field_has_an_upper_case_env_name():
    assert all(n.isupper() for n in ENV_NAMES)
    assert len(set(ENV_NAMES)) == len(ENV_NAMES)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_unresolved_key_vault_reference_is_rejected_for_every_setting(name):
    with pytest.raises(SettingsError) as err:
        load_settings({**GOOD, name: UNRESOLVED})
    message = str(err.value)
    assert f"{name} is an unresolved Key Vault reference" in message
    assert "Key Vault Secrets User" in message and "refresh" in message  # says how to fix it
    assert "kv-x.vault.azure.net" not in message  # the value is never echoed
    assert "very-secret-marketo" not in message
    assert "; " not in message, "only the setting holding the reference is named"


@pytest.mark.parametrize(
    "value",
    [
        "@microsoft.keyvault(VaultName=kv-x;SecretName=sync-hash-key)",
        "  @MICROSOFT.KEYVAULT(SecretUri=https://kv-x.vault.azure.net/secrets/s)",
        '"@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/s)"',
    ],
)
def test_key_vault_reference_detection_ignores_case_spacing_and_quotes(value):
    with pytest.raises(SettingsError, match="SYNC_WEBHOOK_SECRET is an unresolved Key Vault"):
        load_settings({**GOOD, "SYNC_WEBHOOK_SECRET": value})


def test_unresolved_reference_from_the_process_environment_fails_fast(monkeypatch):
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYNC_HASH_KEY", UNRESOLVED)
    with pytest.raises(SettingsError, match="SYNC_HASH_KEY is an unresolved Key Vault"):
        load_settings()


def test_webhook_with_an_unresolved_secret_fails_as_misconfigured_not_401(monkeypatch, caplog):
    # Before: the reference text became the secret and every Marketo call got 401.
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYNC_WEBHOOK_SECRET", UNRESOLVED)
    with caplog.at_level(logging.ERROR, logger="sync_core"):
        reply = asyncio.run(handle_sync_person(b'{"leadId": 1}', {"x-sync-secret": UNRESOLVED}))
    assert reply.status == 500
    assert json.loads(reply.body)["status"] == "error"
    assert "SYNC_WEBHOOK_SECRET is an unresolved Key Vault reference" in caplog.text
    assert "kv-x.vault.azure.net" not in caplog.text + reply.body.decode()


def test_values_that_merely_mention_key_vault_are_accepted():
    s = load_settings(
        {
            **GOOD,
            "SYNC_WEBHOOK_SECRET": "Microsoft.KeyVault-is-not-a-reference",
            "SYNC_STORAGE_ACCOUNT_URL": "https://keyvault.table.core.windows.net",
        }
    )
    assert s.sync_webhook_secret.get_secret_value() == "Microsoft.KeyVault-is-not-a-reference"
    assert s.sync_storage_account_url == "https://keyvault.table.core.windows.net"
