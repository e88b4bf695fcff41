"""infra/modules/alerts.bicep: the alert rules watch metrics the code really emits, mail
one action group, and are wired from main.bicep; the README lists every rule."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.test_bicep import INFRA, MAIN, _code, _resources

ALERTS = INFRA / "modules" / "alerts.bicep"
ROOT = INFRA.parent
TELEMETRY = ROOT / "sync_core" / "telemetry.py"


def _rules() -> list[dict[str, str]]:
    code = _code(ALERTS)
    block = code[code.index("var rules = [") : code.index("resource actionGroup")]
    rules = []
    for entry in re.findall(r"\{(.*?)\n  \}", block, re.S):
        fields = dict(re.findall(r"^\s*(\w+):\s*(.+?)\s*$", entry, re.M))
        rules.append({k: v.strip("'") for k, v in fields.items()})
    return rules


def test_five_rules_with_a_query_each():
    rules = _rules()
    assert [r["name"] for r in rules] == [
        "failed-cycles", "cursor-lag", "no-cycles", "rejection-burst", "quota",
    ]  # fmt: skip
    for r in rules:
        assert r["query"].startswith("customMetrics | where name == ")
        assert r["severity"] in ("1", "2") and r["windowSize"].startswith("PT")


def test_queries_use_metrics_the_code_emits():
    emitted = set(re.findall(r'create_\w+\(\s*"([^"]+)"', TELEMETRY.read_text()))
    assert {"sync.cycles", "sync.cursor.lag", "sync.rejections", "sync.marketo.quota_used"} <= (
        emitted
    )
    for r in _rules():
        (name,) = re.findall(r'name == "([^"]+)"', r["query"])
        assert name in emitted, f"{r['name']} watches {name}, which nothing emits"


def test_rules_mail_the_action_group_and_resolve_themselves():
    (group,) = _resources()["Microsoft.Insights/actionGroups"]
    assert "emailAddress: alertEmail" in group[2] and "location: 'global'" in group[2]
    (rules,) = _resources()["Microsoft.Insights/scheduledQueryRules"]
    body = rules[2]
    for prop in ("evaluationFrequency: 'PT5M'", "autoMitigate: true", "actionGroup.id",
                 "appInsightsId", "enabled: true"):  # fmt: skip
        assert prop in body, prop


def test_main_wires_the_module_only_with_an_email():
    code = _code(MAIN)
    m = re.search(
        r"^module alerts 'modules/alerts.bicep' = if \(!empty\(alertEmail\)\) \{", code, re.M
    )
    assert m, "main.bicep must call modules/alerts.bicep when alertEmail is set"
    assert re.search(r"^param alertEmail string = ''", code, re.M)
    assert "appInsightsId: monitoring.outputs.appInsightsId" in code
    assert "output appInsightsId string = appInsights.id" in _code(
        INFRA / "modules" / "monitoring.bicep"
    )


def test_readme_lists_every_alert_rule():
    readme = (ROOT / "README.md").read_text()
    for r in _rules():
        title = r["displayName"].split(": ", 1)[1]
        assert title in readme, f"README does not list the alert '{title}'"


def test_alerts_file_is_scanned():
    names = {p.relative_to(INFRA).as_posix() for p in sorted(INFRA.rglob("*.bicep"))}
    assert "modules/alerts.bicep" in names
    assert Path(ALERTS).read_text().count("resource ") == 2
