"""Deterministic generation of realistic people for load and sync tests.

The same (seed, count, starting id) always yields the same names, emails, companies
and Dynamics links, so a failing scenario can be replayed exactly; values come from
small shared pools so a million people stay compact in memory.
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from emulators.marketo.activities import NEW_LEAD
from emulators.marketo.fields import iso

if TYPE_CHECKING:
    from emulators.marketo.state import Emulator

FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kara", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara",
         "Umar", "Vera", "Wei", "Xena", "Yusuf", "Zoe", "José", "Åsa", "Mei", "Priya"]
LAST = ["Smith", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Nguyen", "Tanaka",
        "Okafor", "Silva", "Johansson", "O'Brien", "Kim", "Patel", "Cohen", "Novak", "Haddad",
        "Fischer", "Moreau", "Lopez", "Ivanova", "Chen", "Brown", "Wilson", "Khan"]
COMPANIES = ["Contoso", "Fabrikam", "Northwind Traders", "Adventure Works", "Tailspin Toys",
             "Wide World Importers", "Litware", "Proseware", "Woodgrove Bank", "Alpine Ski House",
             "Coho Winery", "Fourth Coffee", "Lucerne Publishing", "Margie's Travel",
             "Trey Research", "Blue Yonder Airlines", "City Power & Light", "Humongous Insurance"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.test", "corp.test"]
PLACES = [("Seattle", "WA", "98101", "United States"), ("Austin", "TX", "73301", "United States"),
          ("Chicago", "IL", "60601", "United States"), ("Toronto", "ON", "M5H", "Canada"),
          ("London", "", "EC1A", "United Kingdom"), ("Berlin", "", "10115", "Germany"),
          ("Paris", "", "75001", "France"), ("Madrid", "", "28001", "Spain"),
          ("Sydney", "NSW", "2000", "Australia"), ("Tokyo", "", "100-0001", "Japan")]
TITLES = ["CEO", "CTO", "Marketing Manager", "Sales Director", "Engineer", "Analyst",
          "Consultant", "VP Operations", "Product Manager", "Office Manager"]
INDUSTRIES = ["Software", "Manufacturing", "Retail", "Finance", "Healthcare", "Education",
              "Hospitality", "Energy"]
SOURCES = ["Web", "Trade Show", "Webinar", "Referral", "Purchased List", "Partner"]
STATUSES = ["Open", "Contacted", "Qualified", "Nurturing", "Unqualified"]
SALUTATIONS = ["Mr.", "Ms.", "Dr.", "Mx."]


def generate(
    count: int, seed: int, first_id: int, now: int, linked: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Yield `count` person dicts (without `id`); `linked` share get a Dynamics link."""
    rng = random.Random(seed)
    intern = sys.intern
    for n in range(count):
        i = first_id + n
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(COMPANIES)
        city, state, postal, country = rng.choice(PLACES)
        local = f"{first}.{last}".lower().replace("'", "").encode("ascii", "ignore").decode()
        created = now - rng.randrange(0, 365 * 86400)
        p: dict[str, Any] = {
            "email": f"{local}.{i}@{rng.choice(DOMAINS)}",
            "firstName": first,
            "lastName": last,
            "company": company,
            "title": rng.choice(TITLES),
            "city": city,
            "country": country,
            "postalCode": postal,
            "industry": rng.choice(INDUSTRIES),
            "leadSource": rng.choice(SOURCES),
            "leadStatus": rng.choice(STATUSES),
            "createdAt": created,
            "updatedAt": created + rng.randrange(0, max(1, now - created)),
        }
        if state:
            p["state"] = state
        r = rng.random()
        if r < 0.6:
            p["phone"] = f"+1 555 {rng.randrange(1000000):07d}"
        if r < 0.2:
            p["salutation"] = rng.choice(SALUTATIONS)
        if r < 0.05:
            p["unsubscribed"] = True
        if linked and rng.random() < linked:
            p["dynamicsId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            p["dynamicsType"] = "lead" if rng.random() < 0.7 else "contact"
        yield {intern(k): v for k, v in p.items()}


def seed_people(
    emu: Emulator, count: int, seed: int, linked: float = 0.0, activities: bool = False
) -> dict[str, Any]:
    """Add `count` people. With `activities`, each gets a New Lead activity logged now;
    otherwise they predate the activity log (an existing database before the sync)."""
    now = int(emu.now())
    first, last = emu.store.bulk_load(generate(count, seed, emu.store.next_id, now, linked))
    if activities:
        now_ms = emu.now_ms()
        for lead_id in range(first, last + 1):
            p = emu.store.people[lead_id]
            emu.log.add(now_ms, lead_id, NEW_LEAD, None, f"{p['firstName']} {p['lastName']}",
                        (("Created Date", iso(p["createdAt"])[:10]), ("Source Type", "Seed")))
    return {"created": count, "firstId": first, "lastId": last, "total": len(emu.store)}
