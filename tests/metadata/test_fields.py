"""`python -m sync_core fields`: the listing, and --write turning a selection into a
mapping file that the sync's own loader reads back."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from sync_core.admin.cli import main
from sync_core.admin.mapping_edit import edit_mapping, parse_pair
from sync_core.admin.mapping_writer import mapping_to_toml, same_rules
from sync_core.errors import ConfigError
from sync_core.mapping import Entity, load_mapping, parse_mapping
from sync_core.settings import DEFAULT_MAPPING_FILE
from tests.scenarios.world import World

UseEnv = Callable[..., None]


def rules(path: Path, entity: Entity) -> dict[str, tuple[str, str, str]]:
    m = load_mapping(path)
    return {r.marketo: (r.column, r.direction, r.winner) for r in m.fields[entity]}


# ---- pure: the serializer and the pair syntax ------------------------------------------


def test_default_mapping_survives_a_round_trip():
    m = load_mapping(DEFAULT_MAPPING_FILE)
    again = parse_mapping(tomllib.loads(mapping_to_toml(m)))
    assert again == m


def test_per_entity_directions_and_winners_round_trip():
    m = parse_mapping(
        {
            "fields": [
                {"marketo": "email", "lead": "emailaddress1", "contact": "emailaddress1"},
                {"marketo": "title", "lead": "jobtitle", "contact": "jobtitle"},
            ]
        }
    )
    edited = edit_mapping(m, ["lead"], add=["title=jobtitle:dynamics"])
    edited = edit_mapping(edited, ["contact"], add=["title=jobtitle:marketo"])
    edited = edit_mapping(edited, ["contact"], add=["city=address1_city:to-marketo"])
    text = mapping_to_toml(edited)
    again = parse_mapping(tomllib.loads(text))
    assert again == edited
    # Both winners differ from their entity's default: one entry cannot say that.
    assert text.count('marketo = "title"') == 2


def test_ignore_case_round_trips_and_survives_a_replaced_pair():
    m = parse_mapping(
        {
            "fields": [
                {"marketo": "email", "lead": "emailaddress1", "ignore_case": False},
                {"marketo": "lastName", "lead": "lastname", "contact": "lastname",
                 "ignore_case": True},
            ]
        }
    )  # fmt: skip
    assert parse_mapping(tomllib.loads(mapping_to_toml(m))) == m
    edited = edit_mapping(m, ["lead"], add=["email=emailaddress1:to-marketo"])
    (email,) = [r for r in edited.fields["lead"] if r.marketo == "email"]
    assert email.direction == "to-marketo" and email.fold_case is False
    added = edit_mapping(m, ["contact"], add=["email=emailaddress1"])
    assert [r.fold_case for r in added.fields["contact"] if r.marketo == "email"] == [True]


def test_pair_syntax_errors_name_the_pair():
    assert parse_pair("phone=telephone1:to-marketo", "lead").winner == "dynamics"
    assert parse_pair("phone=telephone1", "contact").winner == "dynamics"
    assert parse_pair("phone=telephone1:marketo", "contact").winner == "marketo"
    for bad in ("phone", "=x", "phone=", "phone=telephone1:sideways"):
        with pytest.raises(ConfigError, match=r"phone|x"):
            parse_pair(bad, "lead")
    with pytest.raises(ConfigError, match="winner only applies"):
        parse_pair("phone=telephone1:to-marketo:marketo", "lead")


# ---- the writer keeps what the admin wrote -------------------------------------------

COMMENTED = """\
# Our mapping: reviewed by Sales Ops.
# Ask Dana before changing a winner.

[marketo]
dynamics_id_field = "dynamicsId"      # created by IT
dynamics_type_field = "dynamicsType"
dynamics_deleted_field = "dynamicsDeleted"

[dynamics]
marketo_id_column = "new_marketoid"
sync_filter_column = "new_synctomkto"

# ---- identity ----

[[fields]]
marketo = "email"
lead = "emailaddress1"   # the primary address
contact = "emailaddress1"

# Job titles: HR owns them in Dynamics.
[[fields]]
marketo = "title"
lead = "jobtitle"
contact = "jobtitle"

# Legal asked us to stop syncing this one.
[[fields]]
marketo = "doNotCall"
lead = "donotphone"
contact = "donotphone"

# ---- names ----

[[fields]]
marketo = "lastName"
# the family name, as entered
lead = "lastname"
contact = "lastname"

# Keep this file next to the deployment.
"""


def rewrite(text: str, entities: list[Entity], **edit: list[str]) -> str:
    mapping = parse_mapping(tomllib.loads(text))
    edited = edit_mapping(mapping, entities, **edit)
    out = mapping_to_toml(edited, text)
    assert same_rules(parse_mapping(tomllib.loads(out)), edited)  # written = what syncs
    return out


def test_an_unchanged_selection_rewrites_the_file_byte_for_byte():
    assert rewrite(COMMENTED, ["lead", "contact"]) == COMMENTED
    shipped = DEFAULT_MAPPING_FILE.read_text(encoding="utf-8")
    assert rewrite(shipped, ["lead", "contact"], add=["email=emailaddress1"]) == shipped


def test_a_dropped_entry_takes_its_own_comment_and_leaves_the_others():
    out = rewrite(COMMENTED, ["lead", "contact"], drop=["doNotCall"])
    assert out == COMMENTED.replace(
        """\
# Legal asked us to stop syncing this one.
[[fields]]
marketo = "doNotCall"
lead = "donotphone"
contact = "donotphone"

""",
        "",
    )


def test_a_changed_value_keeps_its_line_and_end_of_line_comment():
    out = rewrite(COMMENTED, ["lead"], add=["email=emailaddress2"])
    assert out == COMMENTED.replace('lead = "emailaddress1"   #', 'lead = "emailaddress2"   #')


def test_a_selection_keeps_the_files_order_and_the_loose_comments():
    out = rewrite(
        COMMENTED, ["lead", "contact"], select=["lastName=lastname", "email=emailaddress1"]
    )
    # title and doNotCall go with the comments directly above them; "---- names ----"
    # was about no single entry and stays.
    titles, names = COMMENTED.index("# Job titles"), COMMENTED.index("# ---- names ----")
    assert out == COMMENTED[:titles] + COMMENTED[names:]


def test_per_field_rules_survive_an_entry_split_by_a_replaced_pair():
    text = COMMENTED.replace(
        'marketo = "title"\nlead = "jobtitle"\ncontact = "jobtitle"\n',
        'marketo = "title"\nlead = "jobtitle"\ncontact = "jobtitle"\nblank = "never-overwrites"\n',
    )
    out = rewrite(text, ["lead"], add=["title=jobtitle:to-marketo"])
    title = {r.marketo: r for r in parse_mapping(tomllib.loads(out)).fields["contact"]}["title"]
    assert title.blank == "never-overwrites"  # the contact's rule was not part of the edit
    assert "# Job titles: HR owns them in Dynamics.\n[[fields]]\n" in out


# ---- against the emulators --------------------------------------------------------------


def test_fields_lists_both_systems_with_rights_and_mapping(
    world: World, use_env: UseEnv, capsys: pytest.CaptureFixture[str]
):
    world.dynamics_admin(
        "PUT",
        "field-security",
        json={"table": "lead", "column": "middlename", "secured": True,
              "permissions": {"sync-app": {"read": False}}},
    )  # fmt: skip
    use_env(world)
    assert main(["fields", "--entity", "lead"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    email = next(line for line in lines if line.split()[:1] == ["email"])
    assert email.split()[:8] == [
        "email",
        "email",
        "255",
        "<->",
        "emailaddress1",
        "String",
        "100",
        "y",
    ]
    assert "synced (warning: length)" in email
    middle = next(line for line in lines if line.split()[:1] == ["middlename"])
    assert middle.split() == ["middlename", "String", "50", "None", "-", "-", "-", "yes"]
    assert "Mapped fields: 14, 14 synced, 0 left out" in text
    assert "--add " in text and "leadSource=leadsourcecode" in text
    assert not any(line.startswith("contact") for line in lines)  # --entity lead only

    assert main(["fields", "--entity", "lead", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["entities"]) == ["lead"]
    lead = data["entities"]["lead"]
    email_rule = next(m for m in lead["mapped"] if m["marketo"] == "email")
    assert email_rule["synced"] and email_rule["dynamicsColumn"]["max_length"] == 100
    assert email_rule["marketoField"]["length"] == 255
    col = next(c for c in lead["columns"] if c["logical_name"] == "middlename")
    assert col["is_secured"] and not col["can_read"] and col["mappedTo"] is None
    source = next(c for c in lead["columns"] if c["logical_name"] == "leadsourcecode")
    assert source["options"]["8"] == "Web" and source["suggested"] == "leadSource"
    # A secured, unreadable column is shown but never suggested.
    assert {"marketo": "middleName", "column": "middlename"} not in lead["suggestions"]


def test_fields_write_round_trip(
    world: World, use_env: UseEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    use_env(world)
    out = tmp_path / "mapping.toml"
    argv = ["fields", "--entity", "lead", "--write", str(out),
            "--add", "middleName=middlename,leadSource=leadsourcecode:to-marketo",
            "--add", "title=jobtitle:dynamics", "--drop", "doNotCall"]  # fmt: skip
    assert main(argv) == 0
    lead = rules(out, "lead")
    assert lead["middleName"] == ("middlename", "both", "marketo")
    assert lead["leadSource"] == ("leadsourcecode", "to-marketo", "dynamics")
    assert lead["title"] == ("jobtitle", "both", "dynamics")
    assert "doNotCall" not in lead
    assert rules(out, "contact") == rules(DEFAULT_MAPPING_FILE, "contact")  # untouched
    # The replaced pair keeps its place in the file.
    names = [r.marketo for r in load_mapping(out).fields["lead"]]
    assert names.index("title") == 3

    # The sync (and the listing) now use the written file.
    use_env(world, SYNC_MAPPING_FILE=str(out))
    capsys.readouterr()
    assert main(["fields", "--entity", "lead", "--json"]) == 0
    mapped = {
        m["marketo"]: m for m in json.loads(capsys.readouterr().out)["entities"]["lead"]["mapped"]
    }
    assert mapped["middleName"]["synced"] and mapped["leadSource"]["direction"] == "to-marketo"

    # --select: exactly these pairs; '-' prints instead of writing.
    assert (
        main(["fields", "--select", "email=emailaddress1,lastName=lastname", "--write", "-"]) == 0
    )
    printed = parse_mapping(tomllib.loads(capsys.readouterr().out))
    assert [r.marketo for r in printed.fields["lead"]] == ["email", "lastName"]
    assert [r.marketo for r in printed.fields["contact"]] == ["email", "lastName"]


def test_fields_write_refuses_a_selection_that_cannot_work(
    world: World, use_env: UseEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    use_env(world)
    out = tmp_path / "bad.toml"
    argv = ["fields", "--select", "email=emailaddress1,nope=firstname,unsubscribed=lastname",
            "--write", str(out)]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert not out.exists()
    assert "Marketo has no person field with the REST API name 'nope'" in err
    assert "unsubscribed is boolean, Dataverse lastname is String" in err
    assert "not written: 4 error(s)" in err  # two pairs, two entities
    # company exists on lead only: adding it for both entities is refused too...
    assert main(["fields", "--add", "company=companyname", "--write", str(out)]) == 1
    assert "contact has no column 'companyname'" in capsys.readouterr().err
    # ...and --force writes it anyway.
    assert main(["fields", "--add", "company=companyname", "--write", str(out), "--force"]) == 0
    assert rules(out, "contact")["company"][0] == "companyname"
    # Changing the selection without --write is a usage error (exit 2), not a silent no-op.
    assert main(["fields", "--add", "a=b"]) == 2


def test_fields_write_keeps_the_admins_comments_and_untouched_entries(
    world: World, use_env: UseEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    source = tmp_path / "ours.toml"
    source.write_text(COMMENTED, encoding="utf-8")
    use_env(world, SYNC_MAPPING_FILE=str(source))
    out = tmp_path / "written.toml"
    argv = ["fields", "--entity", "lead", "--add", "title=jobtitle:dynamics",
            "--drop", "doNotCall", "--add", "middleName=middlename",
            "--write", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    # Only the lines the selection changed differ: the lead's title now wins for
    # Dynamics (one line added), doNotCall syncs for contacts only (one line gone), and
    # middleName is added at the end of the entries.
    expected = """\
# Our mapping: reviewed by Sales Ops.
# Ask Dana before changing a winner.

[marketo]
dynamics_id_field = "dynamicsId"      # created by IT
dynamics_type_field = "dynamicsType"
dynamics_deleted_field = "dynamicsDeleted"

[dynamics]
marketo_id_column = "new_marketoid"
sync_filter_column = "new_synctomkto"

# ---- identity ----

[[fields]]
marketo = "email"
lead = "emailaddress1"   # the primary address
contact = "emailaddress1"

# Job titles: HR owns them in Dynamics.
[[fields]]
marketo = "title"
lead = "jobtitle"
contact = "jobtitle"
winner = "dynamics"

# Legal asked us to stop syncing this one.
[[fields]]
marketo = "doNotCall"
contact = "donotphone"

# ---- names ----

[[fields]]
marketo = "lastName"
# the family name, as entered
lead = "lastname"
contact = "lastname"

[[fields]]
marketo = "middleName"
lead = "middlename"

# Keep this file next to the deployment.
"""
    assert out.read_text(encoding="utf-8") == expected
    assert source.read_text(encoding="utf-8") == COMMENTED  # the source is only read
