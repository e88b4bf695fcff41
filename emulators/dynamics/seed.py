"""Deterministic, realistic contacts/leads (and a few accounts) for tests and benchmarks.

Same seed -> same GUIDs, names, emails and Marketo ids, so a test can assert on seeded
data and a benchmark can load one million rows quickly (rows are built directly, with
shared strings interned, instead of going through the HTTP write path).
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from typing import Any

from emulators.dynamics.state import State

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kemal", "Lena", "Marco", "Nora", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
         "Umar", "Vera", "Wei", "Xenia", "Yusuf", "Zoe", "Liam", "Mia", "Noah", "Olivia"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nowak", "Jensen", "Silva", "Kim",
        "Novák", "O'Brien", "Andersson", "Kowalski", "Tanaka", "Schmidt", "Lopez", "Brown",
        "Wilson", "Moreau", "Virtanen", "Horvat", "Costa", "Fischer", "Patel", "Khan"]
CITIES = [("Seattle", "WA", "98101", "United States"), ("Austin", "TX", "73301", "United States"),
          ("Berlin", "BE", "10115", "Germany"), ("Paris", "IDF", "75001", "France"),
          ("London", "LND", "EC1A 1BB", "United Kingdom"), ("Toronto", "ON", "M5H 2N2", "Canada"),
          ("Madrid", "MD", "28001", "Spain"), ("Milan", "MI", "20121", "Italy"),
          ("Sydney", "NSW", "2000", "Australia"), ("Tokyo", "13", "100-0001", "Japan")]
TITLES = ["Marketing Manager", "CTO", "Sales Director", "Procurement Lead", "CEO", "Engineer",
          "Operations Manager", "Head of Growth", "Analyst", "Product Owner"]
COMPANIES = ["Contoso", "Fabrikam", "Northwind Traders", "Adventure Works", "Tailspin Toys",
             "Wide World Importers", "Litware", "Proseware", "Fourth Coffee", "Woodgrove Bank"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def seed(state: State, contacts: int, leads: int, seed_value: int = 0) -> dict[str, Any]:
    rng = random.Random(seed_value)
    intern = sys.intern
    now = int(time.time())
    owner = state.cfg.users[0].systemuserid
    accounts_store = state.stores["account"]
    account_ids: list[str] = []
    for name in COMPANIES:
        aid = _guid(rng)
        account_ids.append(aid)
        accounts_store.put(aid, {"accountid": aid, "name": name, "ownerid": owner,
                                 "ownerid.t": "systemuser", "statecode": 0, "statuscode": 1,
                                 "createdon": now, "modifiedon": now, "createdby": owner,
                                 "modifiedby": owner, "versionnumber": state.next_version()},
                           None)
    counter = {"n": 0}

    def person(table: str) -> dict[str, Any]:
        counter["n"] += 1
        n = counter["n"]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, st, zipc, country = rng.choice(CITIES)
        created = now - rng.randrange(0, 86400 * 365)
        local = f"{first}.{last}".lower().replace("'", "").replace("ü", "u")
        row: dict[str, Any] = {
            "firstname": intern(first), "lastname": intern(last),
            "fullname": f"{first} {last}",
            "emailaddress1": f"{local}.{n}@{rng.choice(DOMAINS)}",
            "jobtitle": intern(rng.choice(TITLES)),
            "telephone1": f"+1 555 {rng.randrange(1000000):07d}",
            "address1_city": intern(city), "address1_stateorprovince": intern(st),
            "address1_postalcode": intern(zipc), "address1_country": intern(country),
            "ownerid": owner, "ownerid.t": "systemuser", "statecode": 0, "statuscode": 1,
            "createdon": created, "modifiedon": created, "createdby": owner, "modifiedby": owner,
            "donotbulkemail": rng.random() < 0.1, "leadsourcecode": rng.randrange(1, 11),
        }
        if rng.random() < 0.7:
            row["new_marketoid"] = str(1000000 + n)
        if rng.random() < 0.05:
            row["new_synctomkto"] = False
        if table == "lead":
            row["companyname"] = intern(rng.choice(COMPANIES))
            row["subject"] = "Website inquiry"
        elif rng.random() < 0.6:
            row["parentcustomerid"] = rng.choice(account_ids)
            row["parentcustomerid.t"] = "account"
        return row

    for table, count in (("contact", contacts), ("lead", leads)):
        store = state.stores[table]
        pk = state.tables[table].primary_id
        for _ in range(count):
            rid = _guid(rng)
            row = person(table)
            row[pk] = rid
            row["versionnumber"] = state.next_version()
            store.put(rid, row, None)
    return {"contacts": contacts, "leads": leads, "accounts": len(account_ids)}
