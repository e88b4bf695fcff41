"""Settings: fail fast naming the setting, never leak a secret."""

from __future__ import annotations

import pytest

from sync_core.settings import ENV_NAMES, SettingsError, load_settings

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
