"""Table and column definitions (the emulator's EntityMetadata).

One source of truth for names, types, MaxLength, option sets, required levels and
IsValidFor* flags: validation, $select/$filter checks, JSON shaping and the
EntityDefinitions endpoint all read from here, so metadata can never disagree with
behaviour (the failure a sync would hit if it trusted metadata to strip columns).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from emulators.dynamics.config import AlternateKey, DynamicsConfig

_NS = uuid.UUID("6f1c8a52-4d0e-4c43-9a53-d3a1f4b0e001")


def metadata_id(*parts: str) -> str:
    """Deterministic MetadataId so ids survive reset/restart (clients cache them)."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


@dataclass
class Column:
    name: str
    # AttributeType: String Memo Boolean Integer BigInt Picklist State Status DateTime
    # Lookup Owner Customer Uniqueidentifier
    type: str
    max_length: int | None = None
    options: dict[int, str] | None = None
    required_level: str = "None"
    valid_for_create: bool = True
    valid_for_update: bool = True
    valid_for_read: bool = True
    targets: tuple[str, ...] = ()  # lookups: target logical names
    is_custom: bool = False
    format_name: str | None = None
    secured: bool = False
    # State options carry the default status; Status options carry their state.
    option_state: dict[int, int] | None = None
    metadata_id: str = ""

    @property
    def is_lookup(self) -> bool:
        return self.type in ("Lookup", "Owner", "Customer")

    @property
    def json_name(self) -> str:
        """Lookups are exposed as `_x_value` (reference §2)."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column] = field(default_factory=dict)
    keys: list[AlternateKey] = field(default_factory=list)
    change_tracking: bool = False
    metadata_id: str = ""
    # json name (e.g. _parentcustomerid_value) -> column
    by_json: dict[str, Column] = field(default_factory=dict)

    def add(self, col: Column) -> None:
        col.metadata_id = metadata_id(self.logical_name, col.name)
        self.columns[col.name] = col
        self.by_json[col.json_name] = col

    def key_named(self, name: str) -> AlternateKey | None:
        return next((k for k in self.keys if k.name == name), None)


LEADSOURCE = {1: "Advertisement", 2: "Employee Referral", 3: "External Referral", 4: "Partner",
              5: "Public Relations", 6: "Seminar", 7: "Trade Show", 8: "Web", 9: "Word of Mouth",
              10: "Other"}
INDUSTRY = {1: "Accounting", 2: "Agriculture and Non-petrol Natural Resource Extraction",
            3: "Broadcasting Printing and Publishing", 4: "Brokers", 5: "Building Supply Retail",
            6: "Business Services", 7: "Consulting", 8: "Consumer Services",
            9: "Design, Direction and Creative Management",
            10: "Distributors, Dispatchers and Processors",
            11: "Doctor's Offices and Clinics", 12: "Durable Manufacturing",
            13: "Eating and Drinking Places", 14: "Entertainment Retail",
            15: "Equipment Rental and Leasing",
            16: "Financial", 17: "Food and Tobacco Processing",
            18: "Inbound Capital Intensive Processing",
            19: "Inbound Repair and Services", 20: "Insurance", 21: "Legal Services",
            22: "Non-Durable Merchandise Retail", 23: "Outbound Consumer Service",
            24: "Petrochemical Extraction and Distribution", 25: "Service Retail",
            26: "SIG Affiliations",
            27: "Social Services", 28: "Special Outbound Trade Contractors", 29: "Specialty Realty",
            30: "Transportation", 31: "Utility Creation and Distribution", 32: "Vehicle Retail",
            33: "Wholesale"}
PREFERRED_CONTACT = {1: "Any", 2: "Email", 3: "Phone", 4: "Fax", 5: "Mail"}


def _s(name: str, n: int, req: str = "None", fmt: str | None = None) -> Column:
    return Column(name, "String", max_length=n, required_level=req, format_name=fmt or "Text")


def _system_columns(t: Table) -> None:
    for name, typ in (("createdon", "DateTime"), ("modifiedon", "DateTime"),
                      ("createdby", "Lookup"), ("modifiedby", "Lookup"),
                      ("createdonbehalfby", "Lookup"), ("modifiedonbehalfby", "Lookup"),
                      ("versionnumber", "BigInt")):
        targets = ("systemuser",) if typ == "Lookup" else ()
        t.add(Column(name, typ, targets=targets, valid_for_create=False, valid_for_update=False))


def _person_table(logical: str, entity_set: str) -> Table:
    pk = f"{logical}id"
    t = Table(logical, entity_set, pk, "fullname", metadata_id=metadata_id(logical))
    t.add(Column(pk, "Uniqueidentifier", valid_for_update=False, required_level="SystemRequired"))
    t.add(_s("firstname", 50, "Recommended"))
    t.add(_s("middlename", 50))
    t.add(_s("lastname", 50, "ApplicationRequired"))
    t.add(Column("fullname", "String", max_length=160, valid_for_create=False,
                 valid_for_update=False, format_name="Text"))
    t.add(_s("emailaddress1", 100, fmt="Email"))
    t.add(_s("jobtitle", 100))
    t.add(_s("telephone1", 50, fmt="Phone"))
    t.add(_s("mobilephone", 50, fmt="Phone"))
    t.add(_s("address1_line1", 250))
    t.add(_s("address1_city", 80))
    t.add(_s("address1_stateorprovince", 50))
    t.add(_s("address1_postalcode", 20))
    t.add(_s("address1_country", 80))
    t.add(_s("websiteurl", 200, fmt="Url"))
    t.add(Column("description", "Memo", max_length=2000))
    for flag in ("donotbulkemail", "donotphone", "donotemail"):
        t.add(Column(flag, "Boolean"))
    t.add(Column("ownerid", "Owner", targets=("systemuser", "team"),
                 required_level="SystemRequired"))
    t.add(Column("industrycode", "Picklist", options=dict(INDUSTRY)))
    t.add(Column("leadsourcecode", "Picklist", options=dict(LEADSOURCE)))
    t.add(Column("preferredcontactmethodcode", "Picklist", options=dict(PREFERRED_CONTACT)))
    _system_columns(t)
    return t


def _merge_columns(t: Table) -> None:
    # Set by the Merge action on the merged-away row (actions.py); read-only otherwise.
    t.add(Column("masterid", "Lookup", targets=(t.logical_name,), valid_for_create=False,
                 valid_for_update=False))
    t.add(Column("merged", "Boolean", valid_for_create=False, valid_for_update=False))


def build_tables(cfg: DynamicsConfig) -> dict[str, Table]:
    """Default schema plus the configured custom columns and alternate keys."""
    contact = _person_table("contact", "contacts")
    contact.add(Column("parentcustomerid", "Customer", targets=("account", "contact")))
    # Set when a lead is qualified into this contact (Dataverse's "Originating Lead").
    contact.add(Column("originatingleadid", "Lookup", targets=("lead",)))
    contact.add(Column("statecode", "State", options={0: "Active", 1: "Inactive"},
                       option_state={0: 1, 1: 2}, required_level="SystemRequired",
                       valid_for_create=False))
    contact.add(Column("statuscode", "Status", options={1: "Active", 2: "Inactive"},
                       option_state={1: 0, 2: 1}))

    _merge_columns(contact)

    lead = _person_table("lead", "leads")
    lead.add(_s("companyname", 100))
    # Filled by QualifyLead with the account / contact it created.
    lead.add(Column("parentaccountid", "Lookup", targets=("account",)))
    lead.add(Column("parentcontactid", "Lookup", targets=("contact",)))
    _merge_columns(lead)
    lead.add(_s("subject", 300, "ApplicationRequired"))
    lead.add(Column("statecode", "State", options={0: "Open", 1: "Qualified", 2: "Disqualified"},
                    option_state={0: 1, 1: 3, 2: 4}, required_level="SystemRequired",
                    valid_for_create=False))
    lead.add(Column("statuscode", "Status",
                    options={1: "New", 2: "Contacted", 3: "Qualified", 4: "Lost",
                             5: "Cannot Contact", 6: "No Longer Interested", 7: "Canceled"},
                    option_state={1: 0, 2: 0, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2}))

    account = Table("account", "accounts", "accountid", "name", metadata_id=metadata_id("account"))
    account.add(Column("accountid", "Uniqueidentifier", valid_for_update=False,
                       required_level="SystemRequired"))
    account.add(_s("name", 160, "ApplicationRequired"))
    account.add(_s("emailaddress1", 100, fmt="Email"))
    account.add(_s("telephone1", 50, fmt="Phone"))
    account.add(_s("websiteurl", 200, fmt="Url"))
    account.add(_s("address1_city", 80))
    account.add(Column("industrycode", "Picklist", options=dict(INDUSTRY)))
    account.add(Column("ownerid", "Owner", targets=("systemuser", "team"),
                       required_level="SystemRequired"))
    account.add(Column("statecode", "State", options={0: "Active", 1: "Inactive"},
                       option_state={0: 1, 1: 2}, required_level="SystemRequired",
                       valid_for_create=False))
    account.add(Column("statuscode", "Status", options={1: "Active", 2: "Inactive"},
                       option_state={1: 0, 2: 1}))
    account.add(Column("originatingleadid", "Lookup", targets=("lead",)))
    _merge_columns(account)
    _system_columns(account)

    user = Table("systemuser", "systemusers", "systemuserid", "fullname",
                 metadata_id=metadata_id("systemuser"))
    user.add(Column("systemuserid", "Uniqueidentifier", valid_for_update=False))
    user.add(_s("fullname", 200))
    user.add(_s("firstname", 64))
    user.add(_s("lastname", 64))
    user.add(_s("domainname", 1024))
    # The user's primary email, as in Dataverse; resolving an owner by email needs it.
    user.add(_s("internalemailaddress", 100, fmt="Email"))
    user.add(Column("applicationid", "Uniqueidentifier"))
    user.add(Column("azureactivedirectoryobjectid", "Uniqueidentifier"))
    user.add(Column("isdisabled", "Boolean"))
    _system_columns(user)

    tables = {t.logical_name: t for t in (contact, lead, account, user)}
    for cc in cfg.custom_columns:
        tables[cc.table].add(Column(cc.name, cc.type, max_length=cc.max_length,
                                    options=dict(cc.options) if cc.options else None,
                                    required_level=cc.required_level, is_custom=True))
    for key in cfg.alternate_keys:
        tables[key.table].keys.append(key)
    for name in cfg.change_tracking_tables:
        tables[name].change_tracking = True
    return tables
