"""The deployment guide keeps the steps a first real deployment depends on.

These are the steps whose absence does not show until Azure: the pre-flight before the first
`create`, and refreshing and checking the Key Vault references after the first deployment
and after each secret rotation (a missed refresh means up to a day of a stale secret).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync_core.settings import UNRESOLVED_REFERENCE

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "infra" / "README.md"
DOCS = [ROOT / "README.md", GUIDE, ROOT / "docs" / "webhook.md"]

# Management API calls for Key Vault references (Microsoft: "Use Key Vault references as app
# settings in Azure App Service and Azure Functions"; REST "Web Apps - Get App Settings Key
# Vault References").
REFRESH = "/config/configreferences/appsettings/refresh?api-version=2022-03-01"
LIST = "/config/configreferences/appsettings?api-version=2022-03-01"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of each Markdown heading, skipping fenced code blocks."""
    found, fenced, offset = [], False, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#+) (.+)$", line)):
            found.append((offset, len(m.group(1)), m.group(2).strip()))
        offset += len(line)
    return found


def _section(text: str, heading: str) -> str:
    """The body of the first heading (any level) that starts with `heading`."""
    headings = _headings(text)
    for i, (start, level, title) in enumerate(headings):
        if title.startswith(heading):
            ends = [s for s, lvl, _ in headings[i + 1 :] if lvl <= level]
            return text[start : ends[0] if ends else len(text)]
    raise AssertionError(f"no heading starting with {heading!r}")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_pre_flight_comes_before_the_first_create() -> None:
    text = _text(GUIDE)
    create = text.index("az deployment group create -g")
    build = text.find("az bicep build --file infra/main.bicep")
    what_if = text.find("az deployment group what-if")
    assert 0 <= build < create, "az bicep build must come before the first create"
    assert 0 <= what_if < create, "what-if must come before the first create"
    advice = text[what_if:create]
    for what in ("+ Create", "- Delete", "zoneRedundant", "alwaysReady", "@Microsoft.KeyVault"):
        assert what in advice, f"the guide must say what to look for in what-if: {what}"


def test_references_are_refreshed_and_checked_after_the_first_deployment() -> None:
    section = _section(_text(GUIDE), "Key Vault references")
    assert "az rest --method post" in section and REFRESH in section
    assert "az rest --method get" in section and LIST in section
    assert "Resolved" in section and "AccessToKeyVaultDenied" in section
    assert "could not be verified" in section, "say what was not verified against Azure"


def test_secret_rotation_refreshes_the_references() -> None:
    section = _section(_text(GUIDE), "Rotating secrets")
    assert "Refresh the Key Vault references" in section
    assert "24 hours" in section and "401" in section


def test_the_settings_error_points_to_a_section_that_exists() -> None:
    m = re.search(r"'([^']+)'\)$", UNRESOLVED_REFERENCE)
    assert m and "infra/README.md" in UNRESOLVED_REFERENCE
    _section(_text(GUIDE), m.group(1))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_to_headings_resolve(path: Path) -> None:
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", _text(path)):
        linked = (path.parent / target).resolve() if target else path
        slugs = {_slug(title) for _, _, title in _headings(_text(linked))}
        assert anchor in slugs, f"{path.name}: no heading for #{anchor} in {target or 'itself'}"
