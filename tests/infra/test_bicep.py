"""Static checks on the Bicep in infra/: app settings match the code, security properties stay.

No Bicep compiler is needed: a small scanner that understands Bicep strings, interpolation
and comments cuts the files into resource bodies, and the assertions look at those bodies.
Each assertion names one property, so deleting that property from the template fails here.
"""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path

import pytest

from sync_core.settings import ENV_NAMES, Settings
from sync_core.state import TABLES

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"

# Settings the platform or SDKs read; every other app setting must be one the code reads.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}

# Flex Consumption rejects or ignores these; runtime and deployment live in functionAppConfig.
FLEX_FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_TIME_ZONE",
    "TZ",
    "AzureWebJobsStorage",  # the key-based form; shared keys are disabled
}

ROLE_GUIDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"

# The tables the state store opens, as SYNC_TABLE_PREFIX + suffix.
TABLE_SUFFIXES = TABLES


# --------------------------------------------------------------------------------------------
# A tiny Bicep scanner
# --------------------------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Blank out // and /* */ comments, leaving strings (and their ${...}) intact."""
    out: list[str] = []
    stack: list[str] = ["code"]  # "code" | "str"; "code" entries above a "str" are ${...}
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if stack[-1] == "str":
            if c == "\\" and i + 1 < n:
                out.append(text[i : i + 2])
                i += 2
                continue
            if c == "'":
                stack.pop()
            elif text.startswith("${", i):
                stack.append("code")
                out.append("${")
                i += 2
                continue
            out.append(c)
            i += 1
            continue
        # code
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if c == "'":
            stack.append("str")
        elif c == "{":
            stack.append("code")
        elif c == "}" and len(stack) > 1:
            stack.pop()
        out.append(c)
        i += 1
    return "".join(out)


def _matching_brace(code: str, open_at: int) -> int:
    """Index of the brace closing the one at open_at (code is comment-free)."""
    stack: list[str] = []
    i = open_at
    while i < len(code):
        c = code[i]
        if stack and stack[-1] == "str":
            if c == "\\":
                i += 2
                continue
            if c == "'":
                stack.pop()
            elif code.startswith("${", i):
                stack.append("interp")
                i += 2
                continue
        elif c == "'":
            stack.append("str")
        elif c == "{":
            stack.append("brace")
        elif c == "}":
            top = stack.pop()
            if not stack:
                assert top == "brace"
                return i
        i += 1
    raise AssertionError(f"unbalanced braces from offset {open_at}")


@cache
def _code(path: Path) -> str:
    return _strip_comments(path.read_text(encoding="utf-8"))


def _bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _resources() -> dict[str, list[tuple[str, str, str]]]:
    """Resource type -> [(symbol, api version, body text)] across every .bicep file."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    decl = re.compile(
        r"^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s*=\s*"  # symbol, type, api version
        r"(?:\[for [^:]+:\s*)?(?:if\s*\([^\n]*\)\s*)?\{",  # optional loop / condition
        re.M,
    )
    for path in _bicep_files():
        code = _code(path)
        for m in decl.finditer(code):
            open_at = m.end() - 1
            body = code[open_at : _matching_brace(code, open_at) + 1]
            found.setdefault(m.group(2), []).append((m.group(1), m.group(3), body))
    return found


def _one(resource_type: str) -> str:
    bodies = _resources().get(resource_type, [])
    assert len(bodies) == 1, f"expected exactly one {resource_type}, found {len(bodies)}"
    return bodies[0][2]


def _has(body: str, prop: str, value: str) -> bool:
    return re.search(rf"^\s*{re.escape(prop)}:\s*{re.escape(value)}\s*$", body, re.M) is not None


@cache
def _app_settings() -> dict[str, str]:
    """Name -> value expression of the `var appSettings = {...}` object in main.bicep."""
    code = _code(MAIN)
    m = re.search(r"^var appSettings\s*=\s*\{", code, re.M)
    assert m, "main.bicep must define the app settings once, as `var appSettings = { ... }`"
    open_at = m.end() - 1
    block = code[open_at + 1 : _matching_brace(code, open_at)]
    settings: dict[str, str] = {}
    for line in block.splitlines():
        if not line.strip():
            continue
        km = re.match(r"^\s*'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:\s*(.+?)\s*$", line)
        assert km, f"app settings must be one `NAME: value` per line, got: {line.strip()!r}"
        assert km.group(1) not in settings, f"duplicate app setting {km.group(1)}"
        settings[km.group(1)] = km.group(2)
    return settings


def _var(name: str, path: Path = MAIN) -> str:
    """The expression of a one-line `var name = ...` declaration."""
    m = re.search(rf"^var {re.escape(name)} = (.+?)\s*$", _code(path), re.M)
    assert m, f"{path.name} must declare `var {name} = ...` on one line"
    return m.group(1)


def _param_description(name: str, path: Path = MAIN) -> str:
    """The @description text of a parameter (decorators sit on the lines above it)."""
    raw = path.read_text(encoding="utf-8")
    m = re.search(rf"@description\('((?:[^'\\]|\\.)*)'\)\n(?:@.*\n)*param {name}\b", raw)
    assert m, f"param {name} in {path.name} needs a @description"
    return m.group(1)


# --------------------------------------------------------------------------------------------
# The scanner itself (so a scanner bug can't make the real assertions pass vacuously)
# --------------------------------------------------------------------------------------------


def test_scanner_handles_nested_strings_and_comments() -> None:
    sample = (
        "var a = take('st${replace(p, '-', '')}${t}', 24) // } not a brace\n"
        "resource r 'x@1' = {\n  k: '${i}'\n}\n"
    )
    code = _strip_comments(sample)
    assert "not a brace" not in code
    open_at = code.index("{", code.index("resource"))
    assert code[_matching_brace(code, open_at)] == "}"
    assert _matching_brace(code, open_at) == len(code.rstrip()) - 1


def test_every_bicep_file_is_found() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in _bicep_files()}
    assert "main.bicep" in names
    assert {
        "modules/storage.bicep",
        "modules/keyvault.bicep",
        "modules/monitoring.bicep",
        "modules/functionapp.bicep",
    } <= names


# --------------------------------------------------------------------------------------------
# App settings vs sync_core.settings
# --------------------------------------------------------------------------------------------


def test_app_settings_are_ones_the_code_reads() -> None:
    unknown = set(_app_settings()) - PLATFORM_SETTINGS - set(ENV_NAMES)
    assert not unknown, f"app settings the code does not read (typo?): {sorted(unknown)}"


def test_every_required_setting_is_set() -> None:
    required = {
        str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        for field in Settings.model_fields.values()
        if field.is_required()
    }
    assert required, "Settings should have required fields; did the model change shape?"
    missing = required - set(_app_settings())
    assert not missing, f"required settings missing from the app settings: {sorted(missing)}"


def test_no_flex_deprecated_or_key_based_settings() -> None:
    present = set(_app_settings()) & FLEX_FORBIDDEN_SETTINGS
    assert not present, f"settings that must not be set on Flex Consumption: {sorted(present)}"
    assert "SYNC_STORAGE_CONNECTION" not in _app_settings(), "state storage must use the identity"


def test_nothing_overrides_host_json_function_timeout() -> None:
    for path in _bicep_files():
        assert "functionTimeout" not in _code(path), (
            f"{path.name} overrides host.json functionTimeout"
        )


def test_host_storage_and_telemetry_use_the_identity() -> None:
    s = _app_settings()
    assert s["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert s["AzureWebJobsStorage__clientId"] == "identity.properties.clientId"
    assert s["AzureWebJobsStorage__accountName"] == "storage.outputs.accountName"
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "'ClientId=${identity.properties.clientId};Authorization=AAD'"
    )
    assert s["SYNC_STORAGE_ACCOUNT_URL"] == "storage.outputs.tableEndpoint"


@pytest.mark.parametrize("name", ["MARKETO_CLIENT_SECRET", "SYNC_WEBHOOK_SECRET", "SYNC_HASH_KEY"])
def test_secrets_are_key_vault_references(name: str) -> None:
    assert re.fullmatch(
        r"'@Microsoft\.KeyVault\(SecretUri=\$\{keyVault\.outputs\.\w+\}\)'", _app_settings()[name]
    )


def test_dynamics_secret_is_optional_and_falls_back_to_the_identity() -> None:
    s = _app_settings()
    assert re.fullmatch(
        r"useDynamicsSecret \? "
        r"'@Microsoft\.KeyVault\(SecretUri=\$\{keyVault\.outputs\.\w+\}\)' : ''",
        s["DYNAMICS_CLIENT_SECRET"],
    )
    assert (
        s["DYNAMICS_CLIENT_ID"]
        == "useDynamicsSecret ? dynamicsAppClientId : identity.properties.clientId"
    )
    assert re.search(r"^var useDynamicsSecret = !empty\(dynamicsClientSecret\)$", _code(MAIN), re.M)
    assert re.search(r"^param dynamicsClientSecret string = ''$", _code(MAIN), re.M)
    assert re.search(r"^param dynamicsTenantId string = tenant\(\)\.tenantId$", _code(MAIN), re.M)


def test_timer_schedule_is_an_app_setting_with_the_code_default() -> None:
    # function_app.py binds the timer to %SYNC_SCHEDULE%: a missing setting means no timer.
    m = re.search(r"^param syncSchedule string = '([^']*)'$", _code(MAIN), re.M)
    assert m and m.group(1) == Settings.model_fields["sync_schedule"].default
    assert _app_settings()["SYNC_SCHEDULE"] == "syncSchedule"


def test_table_prefix_default_matches_the_code_and_names_are_valid() -> None:
    m = re.search(r"^param tablePrefix string = '([^']*)'$", _code(MAIN), re.M)
    assert m
    prefix = m.group(1)
    assert prefix == Settings.model_fields["sync_table_prefix"].default
    block = re.search(r"^var tableNames = \[(.*?)^\]", _code(MAIN), re.M | re.S)
    assert block
    names = [n.replace("${tablePrefix}", prefix) for n in re.findall(r"'([^']+)'", block.group(1))]
    assert names == [prefix + suffix for suffix in TABLE_SUFFIXES]
    for name in names:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", name), name
    assert _app_settings()["SYNC_TABLE_PREFIX"] == "tablePrefix"


# --------------------------------------------------------------------------------------------
# Security-relevant resource properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("allowSharedKeyAccess", "false"),
        ("minimumTlsVersion", "'TLS1_2'"),
        ("supportsHttpsTrafficOnly", "true"),
        ("allowBlobPublicAccess", "false"),
        ("defaultToOAuthAuthentication", "true"),
    ],
)
def test_storage_account_hardening(prop: str, value: str) -> None:
    assert _has(_one("Microsoft.Storage/storageAccounts"), prop, value)


def test_deployment_container_is_private() -> None:
    assert _has(
        _one("Microsoft.Storage/storageAccounts/blobServices/containers"), "publicAccess", "'None'"
    )


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("enableRbacAuthorization", "true"),
        ("enablePurgeProtection", "true"),
        ("enableSoftDelete", "true"),
    ],
)
def test_key_vault_hardening(prop: str, value: str) -> None:
    assert _has(_one("Microsoft.KeyVault/vaults"), prop, value)


def test_app_insights_accepts_entra_tokens_only() -> None:
    assert _has(_one("Microsoft.Insights/components"), "DisableLocalAuth", "true")


@pytest.mark.parametrize("role", sorted(ROLE_GUIDS))
def test_role_assignments_present(role: str) -> None:
    guid = ROLE_GUIDS[role]
    declared = [p for p in _bicep_files() if f"'{guid}'" in _code(p)]
    assert declared, f"{role} ({guid}) is not assigned anywhere"
    assignments = _resources().get("Microsoft.Authorization/roleAssignments", [])
    assert len(assignments) == len(ROLE_GUIDS), "one role assignment per role, no extras"
    for _, _, body in assignments:
        assert _has(body, "principalType", "'ServicePrincipal'")


def test_no_queue_role() -> None:
    for path in _bicep_files():
        assert STORAGE_QUEUE_DATA_CONTRIBUTOR not in _code(path), "the app uses no queues"


def test_flex_plan() -> None:
    plan = _one("Microsoft.Web/serverfarms")
    assert _has(plan, "tier", "'FlexConsumption'")
    assert _has(plan, "name", "'FC1'")
    assert _has(plan, "reserved", "true")


def test_function_app_runtime_identity_and_transport() -> None:
    site = _one("Microsoft.Web/sites")
    runtime = re.search(r"runtime:\s*\{([^}]*)\}", site)
    assert runtime, "functionAppConfig.runtime missing"
    assert _has(runtime.group(1), "name", "'python'")
    assert _has(runtime.group(1), "version", "'3.11'")
    assert _has(site, "kind", "'functionapp,linux'")
    assert _has(site, "type", "'UserAssigned'")
    assert _has(site, "keyVaultReferenceIdentity", "identityId")
    assert _has(site, "httpsOnly", "true")
    assert _has(site, "minTlsVersion", "'1.2'")
    assert "ftpsState" not in site, (
        "Flex Consumption does not support siteConfig.ftpsState (BadRequest 51021 in newer "
        "regions); FTP is off through basicPublishingCredentialsPolicies/ftp"
    )
    assert "linuxFxVersion" not in site, "Flex takes the runtime from functionAppConfig"
    assert "alwaysOn" not in site, "alwaysOn is not supported on Flex Consumption"


def test_basic_publishing_credentials_disabled() -> None:
    policies = _resources().get("Microsoft.Web/sites/basicPublishingCredentialsPolicies", [])
    names = set()
    for _, _, body in policies:
        assert _has(body, "allow", "false")
        m = re.search(r"^\s*name:\s*'(\w+)'\s*$", body, re.M)
        assert m
        names.add(m.group(1))
    assert names == {"ftp", "scm"}


# --------------------------------------------------------------------------------------------
# checkov / pycep-parser 0.5.1 constraints
# --------------------------------------------------------------------------------------------


def test_checkov_skips_sit_inside_resource_bodies_with_a_reason() -> None:
    # checkov ignores a skip comment placed before `resource ...`; it must be inside the body.
    for path in _bicep_files():
        raw = path.read_text(encoding="utf-8")
        code = _code(path)
        bodies = []
        for m in re.finditer(r"^resource\s.*\{\s*$", code, re.M):
            open_at = code.rindex("{", m.start(), m.end())
            bodies.append((open_at, _matching_brace(code, open_at)))
        for skip in re.finditer(r"//\s*checkov:skip=(CKV\w+)(.*)$", raw, re.M):
            assert any(a < skip.start() < b for a, b in bodies), (
                f"{path.name}: {skip.group(1)} outside a resource"
            )
            reason = skip.group(2).lstrip(":").strip()
            assert len(reason) >= 20, f"{path.name}: {skip.group(1)} needs a real reason"


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"^\s*@export\(", "@export()"),
        (r"^\s*import\s", "import"),
        (r"^\s*func\s", "user-defined functions"),
        (r"^\s*param\s+\w+\s+\w+\?", "nullable params"),
        (r"^\s*(param|output)\s+\w+\s+\w+\[\]", "typed-array params/outputs"),
        (r"=>", "lambdas"),
        (r"^\s*extension\s", "extension"),
    ],
)
def test_bicep_stays_in_the_pycep_0_5_1_subset(pattern: str, what: str) -> None:
    # checkov 3.3.30 skips a file it cannot parse and still exits 0; keep out what it can't read.
    for path in _bicep_files():
        assert not re.search(pattern, _code(path), re.M), f"{path.name} uses {what}"


# --------------------------------------------------------------------------------------------
# Resource names: the suffix is cleaned so every name is valid
# --------------------------------------------------------------------------------------------

# The Bicep below is modelled here in Python; the first test pins the Bicep to this model.
SUFFIX_CLEANING = {
    "suffixAllowed": "'abcdefghijklmnopqrstuvwxyz0123456789'",
    "suffixChars": "[for i in range(0, length(nameSuffix)): substring(toLower(nameSuffix), i, 1)]",
    "suffixKept": "[for c in suffixChars: contains(suffixAllowed, c) ? c : '']",
    "cleanSuffix": "join(suffixKept, '')",
    "token": (
        "empty(cleanSuffix) ? uniqueString(subscription().id, resourceGroup().id) : cleanSuffix"
    ),
}
HASH = "4f2kq7x3abcde"  # what uniqueString() returns: 13 lowercase letters and digits

# Azure's naming rules for the three global names.
NAME_RULES = {
    # 3-24 lowercase letters and digits.
    "storageAccountName": r"[a-z0-9]{3,24}",
    # 3-24 letters, digits and hyphens; starts with a letter, ends with a letter or digit, no "--".
    "keyVaultName": r"(?!.*--)[a-z][a-z0-9-]{1,22}[a-z0-9]",
    # 2-60 letters, digits and hyphens; no leading or trailing hyphen.
    "functionAppName": r"[a-z0-9][a-z0-9-]{0,58}[a-z0-9]",
}


def _clean_suffix(suffix: str) -> str:
    allowed = SUFFIX_CLEANING["suffixAllowed"].strip("'")
    return "".join(c for c in suffix.lower() if c in allowed) or HASH


def _evaluate_name(expression: str, prefix: str, token: str) -> str:
    """Evaluate one name expression: a template string, optionally inside take(..., N)."""
    limit = None
    m = re.fullmatch(r"take\((.+), (\d+)\)", expression)
    if m:
        expression, limit = m.group(1), int(m.group(2))
    assert expression.startswith("'") and expression.endswith("'"), expression
    text = expression[1:-1]
    text = text.replace("${replace(prefix, '-', '')}", prefix.replace("-", ""))
    text = text.replace("${prefix}", prefix).replace("${token}", token)
    assert "${" not in text, f"name expression the model does not know: {expression}"
    return text[:limit] if limit else text


def test_suffix_cleaning_is_the_modelled_one() -> None:
    assert string.ascii_lowercase + string.digits == SUFFIX_CLEANING["suffixAllowed"].strip("'")
    for name, expression in SUFFIX_CLEANING.items():
        assert _var(name) == expression, f"var {name} changed; update the model in this test"
    for name in NAME_RULES:
        assert "${token}" in _var(name) and "nameSuffix" not in _var(name), (
            f"{name} must be built from the cleaned token, never from nameSuffix itself"
        )


@pytest.mark.parametrize(
    ("suffix", "token"),
    [
        ("", HASH),
        ("prod-2", "prod2"),
        ("Prod_2", "prod2"),
        ("eu.west 1", "euwest1"),
        ("x", "x"),
        ("ABCDEFGHIJKLM", "abcdefghijklm"),
        ("---", HASH),
    ],
)
@pytest.mark.parametrize("prefix", ["mktosync", "ab", "abcdefghij"])
def test_every_global_name_is_valid_whatever_the_suffix(
    suffix: str, token: str, prefix: str
) -> None:
    assert _clean_suffix(suffix) == token
    for name, rule in NAME_RULES.items():
        value = _evaluate_name(_var(name), prefix, token)
        assert re.fullmatch(rule, value), f"nameSuffix={suffix!r}: {name} {value!r} is invalid"


def test_name_suffix_is_bounded_and_its_cleaning_documented() -> None:
    assert re.search(r"^@maxLength\(13\)\nparam nameSuffix string = ''$", _code(MAIN), re.M)
    description = _param_description("nameSuffix")
    assert "letters and digits" in description and "lower-cased" in description


# --------------------------------------------------------------------------------------------
# Always-ready instances and zone redundancy (cost and cold starts)
# --------------------------------------------------------------------------------------------


def _evaluate_ternary(expression: str, **names: object) -> object:
    """Evaluate a Bicep `cond ? a : b` over ints, bools, ==, >, && and || (nothing else)."""
    m = re.fullmatch(r"(.+?) \? (.+?) : (.+)", expression)
    assert m and "?" not in m.group(3), f"expected one plain ternary, got {expression}"
    allowed = r"[\w\s=<>!&|]+"
    for part in m.groups():
        assert re.fullmatch(allowed, part), f"operator the model does not know in {part!r}"
    python = [p.replace("&&", " and ").replace("||", " or ") for p in m.groups()]
    cond, then, other = (eval(p, {"__builtins__": {}}, dict(names)) for p in python)
    return then if cond else other


@pytest.mark.parametrize(
    ("zone_redundant", "requested", "configured"),
    [
        (False, 0, 0),
        (False, 1, 1),
        (False, 3, 3),
        (True, 0, 0),  # nothing configured: the platform keeps its two per group itself
        (True, 1, 2),  # zone redundancy accepts no fewer than two per configured group
        (True, 2, 2),
        (True, 5, 5),
    ],
)
def test_http_always_ready_combines_with_zone_redundancy(
    zone_redundant: bool, requested: int, configured: int
) -> None:
    count = _evaluate_ternary(
        _var("httpAlwaysReadyCount", FUNCTION_APP),
        zoneRedundant=zone_redundant,
        httpAlwaysReady=requested,
    )
    assert count == configured


def test_always_ready_list_is_the_http_group_or_empty() -> None:
    code = _code(FUNCTION_APP)
    m = re.search(
        r"^var alwaysReady = httpAlwaysReadyCount > 0 \? \[\s*\{\s*"
        r"name: 'http'\s*instanceCount: httpAlwaysReadyCount\s*\}\s*\] : \[\]\s*$",
        code,
        re.M,
    )
    assert m, "alwaysReady must be [{ name: 'http', instanceCount: N }] or [] when N is 0"
    scale = re.search(r"scaleAndConcurrency:\s*\{([^}]*)\}", _one("Microsoft.Web/sites"))
    assert scale, "functionAppConfig.scaleAndConcurrency missing"
    assert _has(scale.group(1), "alwaysReady", "alwaysReady")


def test_http_always_ready_is_a_bounded_opt_in_passed_to_the_app() -> None:
    assert re.search(
        r"^@minValue\(0\)\n@maxValue\(40\)\nparam httpAlwaysReady int = 0$", _code(MAIN), re.M
    ), "httpAlwaysReady: default 0 (off), at most the Flex minimum of maximumInstanceCount"
    assert re.search(r"^\s*httpAlwaysReady: httpAlwaysReady$", _code(MAIN), re.M)
    assert re.search(r"^param httpAlwaysReady int$", _code(FUNCTION_APP), re.M)
    bicepparam = (INFRA / "main.bicepparam").read_text(encoding="utf-8")
    assert re.search(r"^param httpAlwaysReady = 0$", bicepparam, re.M)


@pytest.mark.parametrize(
    ("param", "must_say"),
    [
        # The admin decides here, so the cost has to be said here.
        (
            "zoneRedundant",
            ["at least two always-ready instances per scale group", "around the clock"],
        ),
        ("httpAlwaysReady", ["cold start", "30-second", "billed around the clock", "GB-s"]),
    ],
)
def test_cost_of_always_ready_is_stated_where_the_admin_decides(
    param: str, must_say: list[str]
) -> None:
    description = _param_description(param)
    for phrase in must_say:
        assert phrase in description, f"@description of {param} must mention {phrase!r}"
