"""The engine end to end in-process: edits made through the vendors' APIs, real cycles,
both systems and the stored cursors checked afterwards."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from sync_core import activitylog
from sync_core.activitylog import ensure_types
from sync_core.dynamicscursor import DeltaLink, Watermark, parse_position
from tests.engine.engine import Engine, running_engine
from tests.support.blocking import run_async

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@ex.sim",
       "jobtitle": "Analyst"}  # fmt: skip


@run_async
async def test_a_dynamics_edit_reaches_marketo() -> None:
    async with running_engine() as eng:
        cid = await eng.world.d_create("contact", ADA)
        first = await eng.cycle()
        assert first["outcome"] == "succeeded" and first["counts"]["created_in_marketo"] == 1
        mid = eng.link(cid).marketo_id
        assert eng.person(mid)["title"] == "Analyst"
        assert await eng.world.d_edit("contact", cid, {"jobtitle": "Engineer"})
        second = await eng.cycle()
        assert eng.person(mid)["title"] == "Engineer"
        assert second["counts"]["to_marketo"] == 1 and second["counts"]["to_dynamics"] == 0


@pytest.mark.parametrize(("entity", "winner"), [("contact", "dynamics"), ("lead", "marketo")])
@run_async
async def test_a_same_field_collision_goes_to_the_system_of_record(
    entity: str, winner: str
) -> None:
    async with running_engine() as eng:
        w = eng.world
        values = {**ADA, "subject": "Interest"} if entity == "lead" else ADA
        rid = await w.d_create(entity, values)
        await eng.cycle()
        mid = eng.link(rid).marketo_id
        assert await w.m_edit(mid, {"title": "Set in Marketo"})
        assert await w.d_edit(entity, rid, {"jobtitle": "Set in Dynamics"})
        summary = await eng.cycle()
        expected = "Set in Dynamics" if winner == "dynamics" else "Set in Marketo"
        assert eng.person(mid)["title"] == expected
        assert eng.record(entity, rid)["jobtitle"] == expected
        assert summary["counts"]["collisions"] == 1
        assert eng.link(rid).base  # the agreed value is the new base
        assert (await eng.cycle())["counts"]["to_marketo"] == 0  # and nothing echoes


@run_async
async def test_a_delta_link_cursor_round_trips_through_cycles() -> None:
    async with running_engine() as eng:
        cid = await eng.world.d_create("contact", ADA)
        await eng.cycle()
        first = parse_position(eng.cursor("dynamics-contact"))
        assert isinstance(first, DeltaLink)
        assert eng.cursor("dynamics-contact-resume") is None
        assert eng.cursor("dynamics-contact-columns")
        await eng.world.d_edit("contact", cid, {"jobtitle": "Engineer"})
        summary = await eng.cycle()
        # Read from the stored delta link: only the edit, no re-read of the table.
        assert summary["fullReconcile"] == [] and summary["watermarkMode"] == []
        assert eng.person(eng.link(cid).marketo_id)["title"] == "Engineer"
        second = parse_position(eng.cursor("dynamics-contact"))
        assert isinstance(second, DeltaLink) and second != first


@run_async
async def test_a_watermark_cursor_round_trips_when_change_tracking_is_off() -> None:
    async with running_engine() as eng:
        w = eng.world
        off = {"table": "contact", "enabled": False}
        await w.dynamics_admin("POST", "change-tracking", json=off)
        cid = await w.d_create("contact", ADA)
        summary = await eng.cycle()
        assert summary["watermarkMode"] == ["contact"]
        mark = parse_position(eng.cursor("dynamics-contact"))
        assert isinstance(mark, Watermark) and mark.since
        await w.d_edit("contact", cid, {"jobtitle": "Engineer"})
        await eng.cycle()
        assert eng.person(eng.link(cid).marketo_id)["title"] == "Engineer"
        again = parse_position(eng.cursor("dynamics-contact"))
        assert isinstance(again, Watermark) and again.since and again.since >= mark.since


@run_async
async def test_a_read_cut_short_resumes_from_its_resume_link() -> None:
    async with running_engine() as eng:
        ids = [
            await eng.world.d_create("contact", {"lastname": f"Person{n}",
                                                 "emailaddress1": f"p{n}@ex.sim"})
            for n in range(5)
        ]  # fmt: skip
        cut = await eng.cycle(sync_cycle_budget_seconds=0, sync_dynamics_page_size=2)
        assert cut["outcome"] == "partial"
        resume = eng.cursor("dynamics-contact-resume")
        assert resume and "contacts" in resume  # the next page's link, as Dataverse gave it
        assert eng.cursor("dynamics-contact") is None  # no complete read yet
        linked_before = len(eng.world.links())
        assert 0 < linked_before < 5
        done = await eng.cycle(sync_dynamics_page_size=2)
        assert done["outcome"] == "succeeded" and done["fullReconcile"] == []
        assert eng.cursor("dynamics-contact-resume") is None
        assert isinstance(parse_position(eng.cursor("dynamics-contact")), DeltaLink)
        assert {eng.link(i).dynamics_id for i in ids} == set(ids)


@run_async
async def test_rows_changed_only_in_marketo_are_read_back_in_one_batch() -> None:
    # The cycle reads each linked row a Marketo change touches; 50 ids a query made a
    # 5,000-person change cost 100 Dataverse calls, 500 a query (the 32 KB URL limit) 10.
    # More than one plain query's worth goes as GETs of up to 64 KB inside a $batch.
    async with running_engine() as eng:
        w = eng.world
        ids = [await w.d_create("contact", {"lastname": f"Row{i}"}) for i in range(550)]
        await eng.cycle()
        await eng.cycle()  # the link fields it wrote come back through the feed
        people = [eng.link(rid).marketo_id for rid in ids]
        for i in range(0, len(people), 300):
            batch = [{"id": mid, "title": "Changed in Marketo"} for mid in people[i : i + 300]]
            await w.marketo(
                "POST",
                "/rest/v1/leads.json",
                json={"action": "updateOnly", "lookupField": "id", "input": batch},
            )
        stats = w.apps["dynamics"].state.stats
        before = stats["GET contacts"].calls
        # Some changes commit late in Marketo: the next cycle's feed brings those.
        reached = 0
        for _ in range(2):
            await w.pass_time(300)
            reached += (await eng.cycle(sync_mass_change_limit=0))["counts"]["to_dynamics"]
        assert reached == 550
        assert {eng.record("contact", rid)["jobtitle"] for rid in ids} == {"Changed in Marketo"}
        # The two change-feed reads only: the 550 rows came back through a $batch (two
        # plain queries of 500 ids made 2 calls more; 50 a query made 12).
        assert stats["GET contacts"].calls - before == 2


@run_async
async def test_a_fresh_process_spends_no_marketo_call_on_the_activity_type_ids() -> None:
    # On Flex Consumption a cycle often starts in a new process: its idle cycle would
    # pay a types.json call every 5 minutes. The ids live in the state store instead.
    async with running_engine() as eng:
        w = eng.world
        await w.d_create("contact", ADA)
        activitylog.forget()  # what set-up's process learnt
        await eng.cycle()
        await eng.cycle()
        stats = w.apps["marketo"].state.emulator.stats.endpoints
        lookups = "GET /rest/v1/activities/external/types.json"
        before = stats[lookups].calls
        activitylog.forget()  # a new process remembers nothing
        idle = await eng.cycle()
        assert idle["activityLog"] == "on"
        assert stats[lookups].calls == before
        # A type deleted and re-created meanwhile (new id) is looked up afresh on use.
        await w.marketo("POST", "/rest/v1/activities/external/type/msdynSyncError/delete.json")
        await ensure_types((await w.runtime(w.parts("setup-again"))).marketo)
        activitylog.forget()
        mid = eng.link(next(iter(w.records("contact")))).marketo_id
        assert await w.m_edit(mid, {"title": "t" * 150})  # Dataverse holds 100
        await w.pass_time(300)
        rejected = await eng.cycle()
        assert rejected["counts"]["rejected"] == 1
        log = w.apps["marketo"].state.emulator.log.items
        assert sum("0x80044331" in str(a) for a in log) == 1


async def _contacts_loaded(eng: Engine, n: int, name: str = "Row") -> tuple[dict[str, Any], Any]:
    """`n` new contacts and the cycle that loads them: its summary, Dataverse's stats."""
    for i in range(n):
        await eng.world.d_create("contact", {"lastname": f"{name}{i}"})
    return await eng.cycle(), eng.world.apps["dynamics"].state.stats


@run_async
async def test_a_first_load_writes_a_probe_batch_then_batches_sized_by_its_cost() -> None:
    # Unmeasured, every batch in flight was the 100-operation first guess: 550 link-field
    # writes took six $batch calls. Now one probe, then one batch for the rest.
    async with running_engine() as eng:
        summary, stats = await _contacts_loaded(eng, 550)
        assert summary["counts"]["created_in_marketo"] == 550
        # Beside the two writes, the cycle's metadata read is one $batch of GETs.
        assert stats["POST $batch"].calls == 3


@run_async
async def test_the_next_cycle_starts_from_the_measured_cost_without_a_probe() -> None:
    # Each timer run may be a fresh worker. Unmeasured, its first write batch is a
    # 100-operation probe sent alone; the measure kept from the last cycle saves it.
    async with running_engine() as eng:
        _, stats = await _contacts_loaded(eng, 550)
        rows = eng.world.store.table("state")
        kept = [r for r in rows if r["RowKey"] == "dataverse-seconds-per-op"]
        assert len(kept) == 1 and float(kept[0]["value"]) > 0
        before = stats["POST $batch"].calls
        summary, _ = await _contacts_loaded(eng, 550, "Later")
        assert summary["counts"]["created_in_marketo"] == 550
        assert stats["POST $batch"].calls - before == 1  # the 550 link-field writes at once


def _marketo_calls(eng: Engine) -> dict[str, int]:
    stats = eng.world.apps["marketo"].state.emulator.stats.endpoints
    calls = {k: v.calls for k, v in stats.items()}
    return {"look-ups": calls.get("GET /rest/v1/leads.json", 0),
            "sync leads": calls.get("POST /rest/v1/leads.json", 0)}  # fmt: skip


@run_async
async def test_a_first_load_into_an_empty_marketo_looks_no_email_up() -> None:
    # Each new record's email was looked up (300 a call) before the creates: 5,000
    # records took 17 look-ups. createOnly by email creates them and tells who exists.
    async with running_engine() as eng:
        w = eng.world
        ids = [await w.d_create("contact", {"lastname": f"Row{i}",
                                            "emailaddress1": f"row{i}@ex.sim"})
               for i in range(650)]  # fmt: skip
        before = _marketo_calls(eng)
        summary = await eng.cycle()
        calls = _marketo_calls(eng)
        assert summary["counts"]["created_in_marketo"] == 650
        assert summary["counts"]["linked"] == 0
        assert calls["look-ups"] == before["look-ups"]
        assert calls["sync leads"] - before["sync leads"] == math.ceil(650 / 300)
        people = eng.world.people()
        assert len(people) == 650
        for i, rid in enumerate(ids):
            person = people[eng.link(rid).marketo_id]
            assert person["email"] == f"row{i}@ex.sim" and person["dynamicsId"] == rid
        again = await eng.cycle()
        assert again["counts"]["created_in_marketo"] == 0 and len(eng.world.people()) == 650


@run_async
async def test_a_first_load_into_a_populated_marketo_probes_once_then_looks_up() -> None:
    # When Marketo already has the emails, createOnly only skips them: one call of 300
    # shows it, and the rest are looked up first instead of sent to be skipped.
    async with running_engine() as eng:
        w = eng.world
        for i in range(0, 650, 300):
            people = [{"email": f"row{n}@ex.sim", "lastName": f"Row{n}"}
                      for n in range(i, min(i + 300, 650))]  # fmt: skip
            await w.marketo("POST", "/rest/v1/leads.json",
                            json={"action": "createDuplicate", "input": people})  # fmt: skip
        for i in range(650):
            await w.d_create("contact", {"lastname": f"Row{i}", "emailaddress1": f"row{i}@ex.sim"})
        before = _marketo_calls(eng)
        summary = await eng.cycle()
        calls = _marketo_calls(eng)
        assert summary["counts"]["linked"] == 650 and len(w.people()) == 650
        # one createOnly (all skipped), then the Dynamics ids written onto 650 people
        assert calls["sync leads"] - before["sync leads"] == 1 + math.ceil(650 / 300)
        assert calls["look-ups"] - before["look-ups"] == math.ceil(650 / 300)


@run_async
async def test_a_load_linked_by_email_deletes_only_the_intent_rows_it_wrote() -> None:
    # Only records sent to be created have an intent row; past the first createOnly call
    # of a populated Marketo the rest are looked up by email, without one. Deleting the
    # rows of those too made Table Storage refuse each 100-row delete (a row was not
    # there) and the store then deleted row by row: 5,000 calls for 5,000 people.
    async with running_engine() as eng:
        w = eng.world
        for i in range(0, 600, 300):
            people = [{"email": f"row{n}@ex.sim"} for n in range(i, i + 300)]
            await w.marketo("POST", "/rest/v1/leads.json",
                            json={"action": "createDuplicate", "input": people})  # fmt: skip
        for i in range(650):  # 600 whose email a person has, 50 to create
            await w.d_create("contact", {"lastname": f"Row{i}", "emailaddress1": f"row{i}@ex.sim"})
        store, removed = w.store, []
        real_remove = store.remove_from_set

        async def remove(kind: str, keys: Any) -> None:
            keys = list(keys)
            present = set(await store.members(kind))
            removed.extend((kind, k, k in present) for k in keys)
            await real_remove(kind, keys)

        store.remove_from_set = remove  # type: ignore[method-assign]
        summary = await eng.cycle()
        assert summary["counts"]["linked"] == 600
        assert summary["counts"]["created_in_marketo"] == 50
        intents = [there for kind, _, there in removed if kind == "intentcontact"]
        assert len(intents) >= 50 and all(intents)  # at least the created, none absent
        assert await store.members("intentcontact") == []


@run_async
async def test_a_first_load_links_people_who_exist_by_email_and_duplicates_none() -> None:
    async with running_engine() as eng:
        w = eng.world
        known = await w.m_create({"email": "Known@Ex.sim", "lastName": "Known"})
        twice = [await w.m_create({"email": "twice@ex.sim", "lastName": f"T{n}"})
                 for n in range(2)]  # fmt: skip
        shared_known = await w.m_create({"email": "shared-known@ex.sim", "lastName": "SK"})

        async def contact(name: str, email: str | None) -> str:
            values = {"lastname": name} | ({"emailaddress1": email} if email else {})
            return await w.d_create("contact", values)

        new = await contact("New", "new@ex.sim")
        known_rec = await contact("Known", "known@ex.sim")  # the case differs
        twice_rec = await contact("Twice", "twice@ex.sim")  # two people: which one?
        no_email = await contact("NoEmail", None)
        shared_new = [await contact(f"SN{n}", "shared-new@ex.sim") for n in range(2)]
        shared_old = [await contact(f"SK{n}", "SHARED-known@ex.sim") for n in range(2)]
        before = _marketo_calls(eng)
        summary = await eng.cycle()
        calls = _marketo_calls(eng)
        assert summary["outcome"] == "succeeded"
        # Linked: the one free person with the email (one record of a shared email).
        assert eng.link(known_rec).marketo_id == known
        assert eng.person(known)["dynamicsId"] == known_rec
        (old_owner,) = [r for r in shared_old if eng.link(r).marketo_id == shared_known]
        assert summary["counts"]["linked"] == 2
        # Created: everyone else gets a person of their own, and only one.
        made = [new, twice_rec, no_email, *shared_new, *(set(shared_old) - {old_owner})]
        mids = {eng.link(rid).marketo_id for rid in made}
        assert len(mids) == len(made) and not mids & {known, *twice, shared_known}
        assert summary["counts"]["created_in_marketo"] == len(made)
        assert len(w.people()) == 4 + len(made)
        for rid in made:
            assert eng.person(eng.link(rid).marketo_id)["dynamicsId"] == rid
        # One look-up, for the emails people had. Sync Leads: one createOnly, one
        # createDuplicate, one update writing the Dynamics ids onto the linked people.
        assert calls["look-ups"] - before["look-ups"] == 1
        assert calls["sync leads"] - before["sync leads"] == 3
        again = await eng.cycle()
        assert again["counts"]["created_in_marketo"] == 0 and again["counts"]["linked"] == 0
        assert len(w.people()) == 4 + len(made)


@run_async
async def test_a_person_flagged_by_a_delete_and_linked_again_is_no_longer_flagged() -> None:
    # A Dynamics delete flags the person (dynamicsDeleted); a new record with its email
    # links it again, and the flag must go, or Marketo shows a synced person as deleted.
    async with running_engine() as eng:
        w = eng.world
        first = await w.d_create("contact", ADA)
        await eng.cycle()
        mid = eng.link(first).marketo_id
        await w.d_delete("contact", first)
        await eng.cycle()
        assert eng.person(mid).get("dynamicsDeleted") is True
        again = await w.d_create("contact", ADA)
        await eng.cycle()
        assert eng.link(again).marketo_id == mid
        person = eng.person(mid)
        assert person.get("dynamicsId") == again and person.get("dynamicsDeleted") is False


class _OnTheWire:
    """Which writes were on the wire at once, by system and table. Each takes a latency,
    in-process nothing would ever wait for another: 5 ms a Marketo call, 50 ms a $batch
    (in production a batch of 1,000 takes about 30 s, a Marketo call 5 to 10)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tests.simulation import world as sim

        self.open: dict[str, int] = {}
        self.together: set[tuple[str, str]] = set()
        self.patch_batches = 0
        real = sim.Wire.handle_async_request

        async def watched(wire: sim.Wire, request: Any) -> Any:
            kind = self._kind(wire.system, request)
            if kind is None:
                return await real(wire, request)
            self.patch_batches += kind.startswith("dynamics")
            self.together |= {(kind, k) for k, n in self.open.items() if n and k != kind}
            self.together |= {(k, kind) for k, n in self.open.items() if n and k != kind}
            self.open[kind] = self.open.get(kind, 0) + 1
            try:
                await asyncio.sleep(0.05 if kind.startswith("dynamics") else 0.005)
                return await real(wire, request)
            finally:
                self.open[kind] -= 1

        monkeypatch.setattr(sim.Wire, "handle_async_request", watched)

    @staticmethod
    def _kind(system: str, request: Any) -> str | None:
        if request.method != "POST":
            return None
        if system == "marketo" and request.url.path.endswith("/leads.json"):
            records = json.loads(request.content).get("input") or [{}]
            return f"marketo {records[0].get('dynamicsType', '')}"
        if system == "dynamics" and request.url.path.endswith("$batch"):
            for table in ("lead", "contact"):
                if f"PATCH /api/data/v9.2/{table}s(".encode() in request.content:
                    return f"dynamics {table}"
        return None


@run_async
async def test_a_large_load_writes_one_slice_to_dynamics_while_it_creates_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Marketo's creates and Dataverse's write-back used to take turns per page: each
    # waited out the other. Slices (of 300 here, 3,000 in production) overlap them, and
    # each slice's write-back is still a full batch.
    from sync_core import pagesync

    monkeypatch.setattr(pagesync, "SLICE", 300)
    wire = _OnTheWire(monkeypatch)
    async with running_engine() as eng:
        w = eng.world
        ids = [await w.d_create("contact", {"lastname": f"C{i}", "emailaddress1": f"c{i}@ex.sim"})
               for i in range(1_200)]  # fmt: skip
        summary = await eng.cycle()
        assert summary["outcome"] == "succeeded"
        assert summary["counts"]["created_in_marketo"] == 1_200
        # A slice's write-back ran while the next slice's creates did.
        assert ("marketo contact", "dynamics contact") in wire.together
        # Four slices, one full batch each (the first, unmeasured, is split by the pacer).
        assert wire.patch_batches <= 5
        people, records = w.people(), w.records("contact")
        links = {x.dynamics_id: x.marketo_id for x in w.links()}
        assert len(set(links.values())) == 1_200
        for rid in ids:
            assert people[links[rid]]["dynamicsId"] == rid
            assert records[rid]["new_marketoid"] == str(links[rid])
        assert await w.store.members("intentcontact") == []
        assert (await eng.cycle())["counts"]["created_in_marketo"] == 0


@run_async
async def test_the_contacts_are_created_while_the_leads_are_written_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = _OnTheWire(monkeypatch)
    async with running_engine() as eng:
        w = eng.world
        leads, contacts = [], []
        for i in range(400):
            lead = {"lastname": f"L{i}", "subject": "Interest", "emailaddress1": f"l{i}@ex.sim"}
            leads.append(await w.d_create("lead", lead))
            contact = {"lastname": f"C{i}", "emailaddress1": f"c{i}@ex.sim"}
            contacts.append(await w.d_create("contact", contact))
        summary = await eng.cycle()
        assert summary["outcome"] == "succeeded"
        assert ("marketo contact", "dynamics lead") in wire.together
        links = {(x.entity, x.dynamics_id): x.marketo_id for x in w.links()}
        people = w.people()
        for entity, ids in (("lead", leads), ("contact", contacts)):
            records = w.records(entity)
            for rid in ids:
                mid = links[(entity, rid)]
                assert people[mid]["dynamicsId"] == rid
                assert people[mid]["dynamicsType"] == entity
                assert records[rid]["new_marketoid"] == str(mid)
        # Each table's cursor saved once its pages were committed: nothing is read again.
        assert isinstance(parse_position(eng.cursor("dynamics-lead")), DeltaLink)
        again = await eng.cycle()
        assert again["counts"]["created_in_marketo"] == 0 and again["counts"]["linked"] == 0


@run_async
async def test_a_stop_met_by_several_slices_in_flight_still_ends_the_run_with_its_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first slice's failure stops the run; the slices still in flight fail too and
    # are waited for on the way out. Their error escaped the run before: no outcome, no
    # run record, no quota count.
    from sync_core import pagesync
    from sync_core.dataverse import DataverseClient
    from sync_core.errors import AuthFailed

    monkeypatch.setattr(pagesync, "SLICE", 2)

    async def refused(self: DataverseClient, ops: Any) -> Any:
        raise AuthFailed("Dataverse rejected the sync identity's token twice (401)")

    monkeypatch.setattr(DataverseClient, "batch", refused)
    async with running_engine() as eng:
        for i in range(8):
            await eng.world.d_create(
                "contact", {"lastname": f"C{i}", "emailaddress1": f"c{i}@ex.sim"}
            )
        summary = await eng.cycle()
        assert summary["outcome"] == "failed"
        assert "token twice" in summary["message"]
        assert eng.world.links() == []  # nothing committed for writes that did not land
        assert eng.cursor("dynamics-contact") is None  # the table is read again next time
        quota = [r for r in eng.world.store.table("state") if r["PartitionKey"] == "quota"]
        assert quota and int(quota[0]["value"]) == summary["apiCalls"]["marketo"]
