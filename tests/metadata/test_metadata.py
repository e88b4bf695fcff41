"""Field metadata from both emulators over real HTTP, and the mapping checked against it.

Field security is set through the Dynamics emulator's admin API, exactly as an admin
would restrict the sync's application user; the sync only ever sees it through
EntityDefinitions and RetrievePrincipalAttributePrivileges.
"""

from __future__ import annotations

import asyncio
from typing import Any

from emulators.dynamics import DynamicsConfig
from emulators.dynamics.config import CustomColumn, _default_custom_columns
from sync_core.fieldrules import (
    Metadata,
    create_columns,
    effective_mapping,
    effective_rules,
    validate_mapping,
)
from sync_core.mapping import Entity, Mapping, load_mapping, parse_mapping
from sync_core.metadata import read_metadata
from sync_core.runtime import open_clients
from tests.metadata.conftest import MakeWorld
from tests.scenarios.world import World


def metadata(world: World) -> Metadata:
    async def read() -> Metadata:
        async with open_clients(world.settings(), ca_bundle=world.ca_bundle) as (mk, dv):
            return await read_metadata(mk, dv)

    return asyncio.run(read())


def secure(world: World, table: str, column: str, **grant: bool) -> None:
    world.dynamics_admin(
        "PUT",
        "field-security",
        json={
            "table": table,
            "column": column,
            "secured": True,
            "permissions": {"sync-app": grant},
        },
    )


def mapping_of(*entries: dict[str, Any]) -> Mapping:
    return parse_mapping({"fields": list(entries)})


def reasons(mapping: Mapping, entity: Entity, meta: Metadata) -> dict[str, str]:
    _, excluded = effective_rules(mapping, entity, meta.columns[entity], meta.marketo)
    return {x.field: x.reason for x in excluded}


def test_columns_and_fields_carry_types_lengths_options_and_rights(world: World):
    meta = metadata(world)
    lead = meta.columns["lead"]
    assert meta.user_id == "00000000-0000-4000-8000-00000000a001"  # WhoAmI of sync-app
    first = lead["firstname"]
    assert (first.attribute_type, first.max_length, first.required_level) == (
        "String",
        50,
        "Recommended",
    )
    assert first.can_read and first.can_create and first.can_update and not first.is_secured
    assert (lead["description"].attribute_type, lead["description"].max_length) == ("Memo", 2000)
    assert lead["new_marketoid"].max_length == 20
    # IsValidForCreate/Update false: readable, never writable.
    full = lead["fullname"]
    assert full.can_read and not full.can_create and not full.can_update
    assert lead["leadsourcecode"].options is not None
    assert lead["leadsourcecode"].options[8] == "Web"
    assert lead["donotphone"].options == {0: "No", 1: "Yes"}
    assert "companyname" in lead and "companyname" not in meta.columns["contact"]

    mk = meta.marketo
    assert (mk["email"].data_type, mk["email"].updateable) == ("email", True)
    assert (mk["dynamicsId"].data_type, mk["dynamicsId"].length) == ("string", 36)
    assert mk["createdAt"].updateable is False


def test_secured_column_without_read_is_excluded_as_not_readable(world: World):
    secure(world, "contact", "telephone1", read=False, create=False, update=False)
    meta = metadata(world)
    phone = meta.columns["contact"]["telephone1"]
    assert phone.is_secured and not (phone.can_read or phone.can_create or phone.can_update)
    m = load_mapping(world.settings().sync_mapping_file)

    assert reasons(m, "contact", meta) == {"phone": "not readable by the sync identity"}
    assert reasons(m, "lead", meta) == {}  # lead.telephone1 is not secured
    effective, exclusions = effective_mapping(m, meta)
    assert "phone" not in {r.marketo for r in effective.fields["contact"]}
    assert "phone" in {r.marketo for r in effective.fields["lead"]}
    assert len(exclusions) == 1

    (problem,) = [p for p in validate_mapping(m, meta.columns, meta.marketo) if p.excludes]
    assert (problem.entity, problem.field, problem.severity) == ("contact", "phone", "warning")
    assert "field security profile" in problem.fix


def test_secured_column_grants_decide_update_and_create(world: World):
    # Read only: readable, but a two-way rule would write it -> excluded.
    secure(world, "contact", "telephone1", read=True, create=False, update=False)
    m = load_mapping(world.settings().sync_mapping_file)
    meta = metadata(world)
    assert reasons(m, "contact", meta) == {"phone": "column not updatable by the sync identity"}
    one_way = mapping_of({"marketo": "phone", "contact": "telephone1", "direction": "to-marketo"})
    assert reasons(one_way, "contact", meta) == {}

    # Read + update but no create: synced, left out of creates, with a warning.
    secure(world, "contact", "telephone1", read=True, create=False, update=True)
    meta = metadata(world)
    assert reasons(m, "contact", meta) == {}
    rules, _ = effective_rules(m, "contact", meta.columns["contact"], meta.marketo)
    assert "telephone1" not in create_columns(rules, meta.columns["contact"])
    assert "firstname" in create_columns(rules, meta.columns["contact"])
    problems = validate_mapping(m, meta.columns, meta.marketo)
    assert any(
        p.field == "phone" and p.reason == "column not creatable by the sync identity"
        for p in problems
    )


def test_unknown_and_incompatible_fields_are_excluded_with_reasons(world: World):
    m = mapping_of(
        {"marketo": "email", "lead": "emailaddress1"},
        {"marketo": "noSuchField", "lead": "firstname"},
        {"marketo": "title", "lead": "new_nosuchcolumn"},
        {"marketo": "unsubscribed", "lead": "lastname"},
        {"marketo": "updatedAt", "lead": "modifiedon", "direction": "to-marketo"},
        {"marketo": "createdAt", "lead": "createdon", "direction": "to-dynamics"},
    )
    meta = metadata(world)
    rules, _ = effective_rules(m, "lead", meta.columns["lead"], meta.marketo)
    assert [r.marketo for r in rules] == ["email"]
    assert reasons(m, "lead", meta) == {
        "noSuchField": "Marketo field unknown",
        "title": "column unknown",
        "unsubscribed": "types incompatible",
        "updatedAt": "Marketo field not updateable",
        "createdAt": "column not updatable by the sync identity",
    }

    problems = {(p.entity, p.field): p for p in validate_mapping(m, meta.columns, meta.marketo)}
    assert problems[("lead", "noSuchField")].severity == "error"
    assert "boolean" in problems[("lead", "unsubscribed")].message
    assert "String" in problems[("lead", "unsubscribed")].message
    assert 'direction = "to-dynamics"' in problems[("lead", "updatedAt")].fix
    assert 'direction = "to-marketo"' in problems[("lead", "createdAt")].fix
    assert problems[("lead", "email")].reason == "length"  # Marketo 255 > Dataverse 100
    assert problems[("lead", "email")].severity == "warning"


def test_picklist_maps_by_label_and_reports_the_labels(make_world: MakeWorld):
    long_label = "Enterprise accounts in regulated industries " * 7  # > 255 characters
    config = DynamicsConfig(
        custom_columns=[
            *_default_custom_columns(),
            CustomColumn("lead", "new_segment", "Picklist", options={1: "SMB", 2: long_label}),
        ]
    )
    world = make_world(dynamics_config=config)
    m = mapping_of(
        {"marketo": "leadSource", "lead": "leadsourcecode"},
        {"marketo": "industry", "lead": "new_segment", "direction": "to-marketo"},
        {"marketo": "leadScore", "lead": "industrycode"},
    )
    meta = metadata(world)
    assert meta.columns["lead"]["new_segment"].options == {1: "SMB", 2: long_label}
    # string <-> Picklist pairs; integer <-> Picklist does not.
    assert reasons(m, "lead", meta) == {"leadScore": "types incompatible"}

    problems = validate_mapping(m, meta.columns, meta.marketo)
    (labels,) = [p for p in problems if p.field == "leadSource" and p.reason == "option set"]
    assert labels.severity == "info"
    assert "Advertisement" in labels.message and "Word of Mouth" in labels.message
    (seg,) = [p for p in problems if p.field == "industry" and p.reason == "option set"]
    assert "SMB" in seg.message
    (too_long,) = [p for p in problems if p.field == "industry" and p.reason == "length"]
    assert too_long.severity == "warning" and str(len(long_label)) in too_long.message


def test_a_metadata_read_is_two_dataverse_requests(world: World):
    """WhoAmI, then the grants and both tables' column reads as GETs in one $batch: a
    refresh counts two requests against the service-protection limit, not twelve."""
    world.dynamics_admin("POST", "stats")
    meta = metadata(world)
    calls = {k: v["calls"] for k, v in world.dynamics_admin("GET", "stats").items()}
    made = {k: n for k, n in calls.items() if n and "token" not in k and "openid" not in k}
    assert made == {"GET WhoAmI": 1, "POST $batch": 1}
    # Everything the separate reads gave is still there, for both tables.
    assert meta.columns["contact"]["emailaddress1"].max_length == 100
    assert meta.columns["lead"]["leadsourcecode"].options is not None
