"""Dataverse actions a salesperson triggers: `Merge`, `QualifyLead`; `RetrieveUserPrivileges`.

Merge ("Merge table rows") keeps the subordinate: it is deactivated and points at its
master (`masterid`, `merged`), so change tracking reports it as an *update*, never as a
`$deletedEntity`; the master changes only when UpdateContent (or the filling of its empty
columns) changes it; child rows pointing at the subordinate move to the master.
QualifyLead closes the lead (Qualified) and creates a contact and/or an account linked back
through `originatingleadid`. The failure this prevents: a sync that only knows create,
update and delete, and so mistakes a merge or a qualification for an edit (or a loss).

Every effect of one action lands in one journal, so the action is all-or-nothing, alone
or inside a `$batch` change set.
"""

from __future__ import annotations

from typing import Any

from emulators.dynamics import security
from emulators.dynamics.errors import DataverseError, bad_request, not_found
from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.records import apply_write, is_guid, new_id, parse_body
from emulators.dynamics.schema import Table
from emulators.dynamics.state import State
from emulators.dynamics.store import Row, rollback

MERGEABLE = ("account", "contact", "lead")
# Assumption (README "Choices"): Microsoft documents no code for these refusals; the
# emulator uses InvalidArgument.
INVALID_ARGUMENT = "0x80040203"
# Lead -> contact columns copied by QualifyLead, after the default lead-to-contact
# relationship mapping (names, email, phones, address, job title, preferences).
QUALIFY_CONTACT_COLUMNS = (
    "firstname", "middlename", "lastname", "emailaddress1", "jobtitle", "telephone1",
    "mobilephone", "address1_line1", "address1_city", "address1_stateorprovince",
    "address1_postalcode", "address1_country", "websiteurl", "description",
    "donotbulkemail", "donotphone", "donotemail", "preferredcontactmethodcode",
    "leadsourcecode", "industrycode")
# Lead -> account columns (default lead-to-account mapping; companyname becomes name).
QUALIFY_ACCOUNT_COLUMNS = {"companyname": "name", "telephone1": "telephone1",
                           "websiteurl": "websiteurl", "address1_city": "address1_city",
                           "emailaddress1": "emailaddress1", "industrycode": "industrycode"}


class _Journal:
    """The caller's journal inside a change set, else one of our own rolled back on error."""

    def __init__(self, req: ApiRequest) -> None:
        self.own = req.journal is None
        self.entries: list[Any] = [] if req.journal is None else req.journal

    def abort(self) -> None:
        if self.own:
            rollback(self.entries)


def _ref(state: State, value: Any, name: str) -> tuple[Table, str]:
    """`{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": "..."}` -> row."""
    if not isinstance(value, dict):
        raise bad_request(f"The parameter '{name}' is required and must be an entity.")
    odata_type = str(value.get("@odata.type", "")).lstrip("#")
    if not odata_type:
        # merge-table-rows.md: the parameters' types are not declared, so the annotation
        # is required.
        raise bad_request(f"The '@odata.type' annotation is required on parameter '{name}'.")
    logical = odata_type.removeprefix("Microsoft.Dynamics.CRM.")
    table = state.tables.get(logical)
    if table is None:
        raise bad_request(f"The entity type '{odata_type}' is not valid.")
    rid = value.get(table.primary_id)
    if not isinstance(rid, str) or not is_guid(rid):
        raise bad_request(f"The parameter '{name}' needs its '{table.primary_id}'.")
    return table, rid.lower()


def _row(state: State, table: Table, rid: str) -> Row:
    row = state.stores[table.logical_name].rows.get(rid)
    if row is None:
        raise not_found(table.logical_name, rid)
    return row


def merge(state: State, req: ApiRequest) -> ApiResponse:
    """`POST Merge` (unbound): 204 No Content."""
    body = req.json_body()
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    ttable, tid = _ref(state, body.get("Target"), "Target")
    stable, sid = _ref(state, body.get("Subordinate"), "Subordinate")
    if "PerformParentingChecks" not in body:
        raise bad_request("The parameter 'PerformParentingChecks' is required.")
    name = ttable.logical_name
    if stable.logical_name != name:
        raise DataverseError(400, INVALID_ARGUMENT,
                             "The Target and Subordinate records must be of the same type "
                             f"('{name}' and '{stable.logical_name}').")
    if name not in MERGEABLE:
        raise DataverseError(400, INVALID_ARGUMENT,
                             f"This type: {name} is not supported with merge operation")
    if tid == sid:
        raise DataverseError(400, INVALID_ARGUMENT, "Merge cannot be performed on master and "
                                                    "sub-entities that are identical.")
    master, sub = _row(state, ttable, tid), _row(state, stable, sid)
    if master.get("statecode", 0) != 0:
        raise DataverseError(400, INVALID_ARGUMENT, f"master entity:{name}-{tid} is deactive")
    if sub.get("statecode", 0) != 0:
        raise DataverseError(400, INVALID_ARGUMENT, f"sub-entity:{name}-{sid} is deactive")
    user = req.user
    # "Merge message privileges": Merge (org-wide); Read, Share, Append(To) and Write on
    # the master; Write on the subordinate.
    security.require_global(state, user, "prvMerge")
    for op in ("Read", "Write", "Share", "Append", "AppendTo"):
        security.require(state, user, name, op, master, tid)
    security.require(state, user, name, "Write", sub, sid)
    update = body.get("UpdateContent") or {}
    if update and str(update.get("@odata.type", "")).lstrip("#") not in (
            "", f"Microsoft.Dynamics.CRM.{name}"):
        raise bad_request("UpdateContent must be of the Target's type.")
    changes = parse_body(state, ttable, update, req.content_ids, creating=False)
    changes.pop(ttable.primary_id, None)
    if body.get("PerformParentingChecks") is True:
        _parenting_check(ttable, master, sub)
    if state.cfg.merge_fills_empty_columns:
        for col, value in _fillable(ttable, master, sub).items():
            changes.setdefault(col, value)
    journal = _Journal(req)
    try:
        # Merge of account/contact/lead runs in the system context (merge-table-rows.md),
        # so the individual writes are not privilege-checked again.
        changes = {k: v for k, v in changes.items() if master.get(k) != v}
        if changes:
            apply_write(state, ttable, user, tid, master, changes, req.headers,
                        journal.entries, check_privileges=False)
        state_code, status = (state.cfg.merge_lead_state if name == "lead" else (1, 2))
        apply_write(state, stable, user, sid, _row(state, stable, sid),
                    {"statecode": state_code, "statuscode": status, "masterid": tid,
                     "merged": True}, req.headers, journal.entries, check_privileges=False)
        _reparent(state, req, name, sid, tid, journal.entries)
    except DataverseError:
        journal.abort()
        raise
    return ApiResponse.empty(204)


_PARENT = {"contact": "parentcustomerid", "lead": "parentaccountid"}


def _parenting_check(table: Table, master: Row, sub: Row) -> None:
    col = _PARENT.get(table.logical_name)
    if col and master.get(col) and sub.get(col) and master.get(col) != sub.get(col):
        # Assumption: wording and code are ours (PerformParentingChecks is not specified).
        raise DataverseError(400, INVALID_ARGUMENT,
                             "The records have different parents; merging them would change "
                             "the parenting of the master (PerformParentingChecks).")


def _fillable(table: Table, master: Row, sub: Row) -> dict[str, Any]:
    """Subordinate values for the master's empty columns (existing data is kept)."""
    keyed = {c for k in table.keys for c in k.columns}
    out: dict[str, Any] = {}
    for col in table.columns.values():
        if not col.valid_for_update or col.type in ("State", "Status", "Owner") or \
                col.name in keyed or col.name == table.primary_id:
            continue
        if master.get(col.name) is None and sub.get(col.name) is not None:
            out[col.name] = sub[col.name]
            if col.name + ".t" in sub:
                out[col.name + ".t"] = sub[col.name + ".t"]
    return out


def _reparent(state: State, req: ApiRequest, logical: str, old: str, new: str,
              journal: list[Any]) -> None:
    """Point child rows at the master (each a normal update of the child)."""
    for table in state.tables.values():
        cols = [c for c in table.columns.values() if c.is_lookup and logical in c.targets
                and c.valid_for_update and c.name != "masterid"]
        if not cols:
            continue
        store = state.stores[table.logical_name]
        for rid, row in list(store.rows.items()):
            moved = {c.name: new for c in cols if row.get(c.name) == old
                     and row.get(c.name + ".t", logical) == logical}
            if moved:
                apply_write(state, table, req.user, rid, row, moved, req.headers, journal,
                            check_privileges=False)


def qualify_lead(state: State, req: ApiRequest, table: Table, target: Any) -> ApiResponse:
    """`POST leads(id)/Microsoft.Dynamics.CRM.QualifyLead`: the created entity references."""
    if table.logical_name != "lead":
        raise DataverseError(404, "0x80060888",
                             "Resource not found for the segment 'Microsoft.Dynamics.CRM."
                             "QualifyLead'.")
    if target.rid is None:
        raise not_found("lead", target.url_key)
    body = req.json_body()
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for name in ("CreateAccount", "CreateContact", "CreateOpportunity", "Status"):
        if name not in body:
            raise bad_request(f"The parameter '{name}' is required.")
    lead = _row(state, table, target.rid)
    if lead.get("statecode", 0) != 0:
        # Text from "Troubleshoot lead qualification issues" (error 5); code assumed.
        raise DataverseError(400, INVALID_ARGUMENT,
                             "The lead is closed. You cannot convert or qualify a lead that "
                             "is already closed.")
    user = req.user
    security.require(state, user, "lead", "Write", lead, target.rid)
    journal = _Journal(req)
    created: list[dict[str, Any]] = []
    lead_changes: dict[str, Any] = {}
    try:
        account_id = None
        if body["CreateAccount"] is True:
            account_id = new_id()
            values = {dst: lead[src] for src, dst in QUALIFY_ACCOUNT_COLUMNS.items()
                      if lead.get(src) is not None}
            values["originatingleadid"] = target.rid
            apply_write(state, state.tables["account"], user, account_id, None, values,
                        req.headers, journal.entries)
            created.append({"@odata.type": "#Microsoft.Dynamics.CRM.account",
                            "accountid": account_id})
            lead_changes["parentaccountid"] = account_id
        if body["CreateContact"] is True:
            contact_id = new_id()
            cols = QUALIFY_CONTACT_COLUMNS + tuple(state.cfg.qualify_extra_columns)
            values = {c: lead[c] for c in cols if lead.get(c) is not None}
            values["originatingleadid"] = target.rid
            if account_id is not None:
                values["parentcustomerid"] = account_id
                values["parentcustomerid.t"] = "account"
            apply_write(state, state.tables["contact"], user, contact_id, None, values,
                        req.headers, journal.entries)
            created.append({"@odata.type": "#Microsoft.Dynamics.CRM.contact",
                            "contactid": contact_id})
            lead_changes["parentcontactid"] = contact_id
        # No opportunity table in the emulator: CreateOpportunity is accepted and ignored.
        status = body["Status"]
        if isinstance(status, bool) or not isinstance(status, int):
            raise bad_request("The parameter 'Status' must be an Edm.Int32.")
        lead_changes.update({"statecode": 1, "statuscode": status})
        apply_write(state, table, user, target.rid, _row(state, table, target.rid),
                    lead_changes, req.headers, journal.entries)
    except DataverseError:
        journal.abort()
        raise
    return ApiResponse.json(200, {
        "@odata.context": f"{req.api_root}$metadata#Collection(Microsoft.Dynamics.CRM."
                          "crmbaseentity)",
        "value": created}, operations=len(created) + 1)


def retrieve_user_privileges(state: State, req: ApiRequest, table: Table,
                             key: str) -> ApiResponse:
    """`GET systemusers(id)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`."""
    if table.logical_name != "systemuser":
        raise DataverseError(404, "0x80060888", "Resource not found for the segment "
                                                "'Microsoft.Dynamics.CRM.RetrieveUserPrivileges'.")
    uid = key.strip().lower()
    user = state.users_by_id.get(uid)
    if user is None:
        raise not_found("systemuser", uid)
    security.require(state, req.user, "systemuser", "Read")
    return ApiResponse.json(200, {
        "@odata.context": f"{req.api_root}$metadata#Microsoft.Dynamics.CRM."
                          "RetrieveUserPrivilegesResponse",
        "RolePrivileges": security.user_privileges(state, user)})
