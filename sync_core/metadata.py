"""Field metadata read from both systems: what exists, and what the sync may do with it.

Dataverse EntityDefinitions plus the sync identity's own field-level security grants
(RetrievePrincipalAttributePrivileges, which needs no admin rights), and Marketo
describe2. Reading the identity's grants rather than the column flags alone prevents
the sync from trusting a secured column it cannot read: it would come back as null
and look like a cleared value. The clients are passed in (`runtime` builds them), so
this module never imports the composition root; `sync_core.fieldrules` judges what it
reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping as MappingT
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.dataverse import DataverseClient
from sync_core.fieldrules import ColumnInfo, MarketoField, Metadata
from sync_core.mapping import ENTITIES, Entity
from sync_core.marketo import MarketoClient

# Field-permission values in RetrievePrincipalAttributePrivileges: 0 not allowed, 4 allowed.
_ALLOWED = 4


@dataclass(frozen=True, slots=True)
class Privilege:
    """The identity's grant on one secured column (absent row = nothing granted)."""

    read: bool
    create: bool
    update: bool


async def sync_identity(dv: DataverseClient) -> str:
    """The systemuserid the sync runs as (WhoAmI)."""
    body = await dv.get_json("WhoAmI")
    return str(body["UserId"]).lower()


def _privileges_url(user_id: str) -> str:
    return f"systemusers({user_id})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()"


def _privileges_from(body: dict[str, Any]) -> dict[str, Privilege]:
    return {
        str(p["AttributeId"]).lower(): Privilege(
            int(p.get("CanRead") or 0) == _ALLOWED,
            int(p.get("CanCreate") or 0) == _ALLOWED,
            int(p.get("CanUpdate") or 0) == _ALLOWED,
        )
        for p in body.get("AttributePrivileges") or []
    }


async def column_privileges(dv: DataverseClient, user_id: str) -> dict[str, Privilege]:
    """The identity's secured-column grants, keyed by attribute MetadataId (lower case).
    Covers profiles granted directly and through teams; needs no admin rights."""
    return _privileges_from(await dv.get_json(_privileges_url(user_id)))


def _label(label: Any) -> str:
    if not isinstance(label, dict):
        return ""
    user = label.get("UserLocalizedLabel") or {}
    if user.get("Label"):
        return str(user["Label"])
    for loc in label.get("LocalizedLabels") or []:
        if loc.get("Label"):
            return str(loc["Label"])
    return ""


def _picklist_options(attr: dict[str, Any]) -> dict[int, str]:
    # A local option set arrives in OptionSet, a global one may arrive in GlobalOptionSet.
    for key in ("OptionSet", "GlobalOptionSet"):
        opts = (attr.get(key) or {}).get("Options")
        if opts:
            return {int(o["Value"]): _label(o.get("Label")) for o in opts}
    return {}


def _boolean_options(attr: dict[str, Any]) -> dict[int, str]:
    os_ = attr.get("OptionSet") or {}
    out = {}
    for key, default in (("FalseOption", "No"), ("TrueOption", "Yes")):
        opt = os_.get(key) or {}
        out[int(opt.get("Value", 1 if key == "TrueOption" else 0))] = (
            _label(opt.get("Label")) or default
        )
    return out


def _column_urls(entity: Entity) -> list[str]:
    """The reads that describe one table's columns: the attributes, then (MaxLength and
    option sets live on the derived types) one query per cast."""
    base = f"EntityDefinitions(LogicalName='{entity}')/Attributes"
    cast = f"{base}/Microsoft.Dynamics.CRM."
    select = (
        "LogicalName,MetadataId,AttributeType,IsSecured,IsValidForRead,"
        "IsValidForCreate,IsValidForUpdate,RequiredLevel"
    )
    return [
        f"{base}?$select={select}",
        f"{cast}StringAttributeMetadata?$select=LogicalName,MaxLength",
        f"{cast}MemoAttributeMetadata?$select=LogicalName,MaxLength",
        f"{cast}PicklistAttributeMetadata?$select=LogicalName"
        "&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)",
        f"{cast}BooleanAttributeMetadata?$select=LogicalName&$expand=OptionSet",
    ]


def _columns_from(
    bodies: Sequence[dict[str, Any]], privs: MappingT[str, Privilege]
) -> dict[str, ColumnInfo]:
    """One table's columns from the answers to its `_column_urls`, in that order."""
    attrs, strings, memos, picklists, booleans = bodies
    lengths = {
        a["LogicalName"]: a.get("MaxLength")
        for a in [*strings.get("value", []), *memos.get("value", [])]
    }
    options: dict[str, dict[int, str]] = {
        a["LogicalName"]: _picklist_options(a) for a in picklists.get("value", [])
    }
    options.update({a["LogicalName"]: _boolean_options(a) for a in booleans.get("value", [])})
    out: dict[str, ColumnInfo] = {}
    for a in attrs.get("value", []):
        name = str(a["LogicalName"])
        secured = bool(a.get("IsSecured"))
        grant = privs.get(str(a.get("MetadataId", "")).lower())
        # A secured column without a grant row is invisible and unwritable (no bypass).
        if secured:
            allowed = grant or Privilege(False, False, False)
        else:
            allowed = Privilege(True, True, True)
        length = lengths.get(name)
        out[name] = ColumnInfo(
            logical_name=name,
            attribute_type=str(a.get("AttributeType") or ""),
            max_length=int(length) if length is not None else None,
            required_level=str((a.get("RequiredLevel") or {}).get("Value") or "None"),
            is_secured=secured,
            can_read=bool(a.get("IsValidForRead", True)) and allowed.read,
            can_create=bool(a.get("IsValidForCreate", True)) and allowed.create,
            can_update=bool(a.get("IsValidForUpdate", True)) and allowed.update,
            options=options.get(name),
        )
    return out


async def dynamics_columns(
    dv: DataverseClient,
    entity: Entity,
    *,
    privileges: MappingT[str, Privilege] | None = None,
) -> dict[str, ColumnInfo]:
    """Every column of `entity` with what the sync identity may do with it.

    `privileges` (from `column_privileges`) may be passed when reading several tables,
    to save the WhoAmI + privileges round trips."""
    if privileges is None:
        privileges = await column_privileges(dv, await sync_identity(dv))
    return _columns_from(await dv.get_many(_column_urls(entity)), privileges)


async def marketo_fields(mk: MarketoClient) -> dict[str, MarketoField]:
    """Person fields visible to the API user, from describe2 (one call)."""
    body = await mk.call("GET", "/rest/v1/leads/describe2.json")
    out: dict[str, MarketoField] = {}
    for obj in body.get("result") or []:
        for f in obj.get("fields") or []:
            length = f.get("length")
            out[str(f["name"])] = MarketoField(
                name=str(f["name"]),
                data_type=str(f.get("dataType") or ""),
                length=int(length) if length is not None else None,
                updateable=bool(f.get("updateable", False)),
            )
    return out


async def read_metadata(
    mk: MarketoClient, dv: DataverseClient, entities: tuple[Entity, ...] = ENTITIES
) -> Metadata:
    """Both systems' metadata for `entities`, read concurrently. Dataverse's part is
    two calls: WhoAmI, then the grants and every table's column reads in one `$batch`
    (eleven GETs for two tables; one call each would count eleven requests)."""

    async def dynamics() -> tuple[str, list[dict[str, ColumnInfo]]]:
        user_id = await sync_identity(dv)
        urls = [_column_urls(e) for e in entities]
        bodies = await dv.get_many([_privileges_url(user_id), *(u for us in urls for u in us)])
        privs, rest = _privileges_from(bodies[0]), bodies[1:]
        cols = []
        for us in urls:
            cols.append(_columns_from(rest[: len(us)], privs))
            rest = rest[len(us) :]
        return user_id, cols

    mfields, (user_id, cols) = await asyncio.gather(marketo_fields(mk), dynamics())
    return Metadata(user_id, dict(zip(entities, cols, strict=True)), mfields)
