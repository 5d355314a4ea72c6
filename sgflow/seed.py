"""The demo seed: the example partnerships' arrangements and a user for every person they name. Idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from safeguarding.accounts import hash_password
from safeguarding.arrangements import load
from safeguarding.tables import User
from safeguarding.versions import store_version

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples"
DEMO_FILES = ("riverford-and-vale.json", "northmoor-and-eastholme.yaml")
DEMO_PASSWORD = "demo-password"  # noqa: S105 (printed on purpose: demo accounts only)
DEMO_AUTHOR = "demo seed"
NATIONAL_USERS = [("u-panel-analyst", "panel@demo.test", "Panel analyst (demo)", "national_body"),
                  ("u-sgflow-admin", "admin@demo.test", "Administrator (demo)", "administrator")]
# Fictional names, so the demo looks real and name-scanning tests have names to look for.
_FIRST = ["Alex", "Priya", "Tom", "Sian", "Grace", "Daniel", "Fatima", "Owen", "Ruth", "Mark", "Hannah", "Imran",
          "Lucy", "Ben", "Chloe", "Sam", "Joanna", "Kwame", "Emma", "Raj"]
_LAST = ["Morgan", "Shah", "Okafor", "Evans", "Liu", "Hughes", "Khan", "Price", "Adeyemi", "Bell", "Cole", "Aziz",
         "Ward", "Carter", "Fisher", "Patel", "Reid", "Mensah", "Doyle", "Kapoor"]
# Whom `sgflow up` prints, one per kind of user (the first of each that exists).
HIGHLIGHTS = ["u-rv-business-manager", "u-rv-la-head-qa", "u-rv-icb-cno", "u-rv-scrutineer", "u-panel-analyst",
              "u-sgflow-admin"]


def _name(index: int) -> str:
    """A distinct fictional name for each index below 400."""
    return f"{_FIRST[index % len(_FIRST)]} {_LAST[(index // len(_FIRST) + index * 7) % len(_LAST)]}"


def _people(doc: dict) -> dict[str, dict]:
    """user_ref -> {kind, agency_id, title} for everyone an arrangements document names."""
    people: dict[str, dict] = {}
    lead_roles = {r for r in ("business_manager", "partnership_lead")}
    scrutineer_role = (doc.get("independent_scrutiny") or {}).get("scrutineer_role")
    agency_of_role = {a["contact_role"]: a["id"] for a in doc.get("relevant_agencies", []) if a.get("contact_role")}
    for partner in doc.get("safeguarding_partners", []):
        for post in ("lead", "delegate"):
            person = partner.get(post) or {}
            if person.get("user_ref"):
                people.setdefault(person["user_ref"], {"kind": "reviewer", "agency_id": partner["id"],
                                                       "title": f"{person.get('role_title', post)}, "
                                                                f"{partner.get('organisation', partner['id'])}"})
    for role in doc.get("roles", []):
        for ref in role.get("members", []):
            entry = people.setdefault(ref, {"kind": "reviewer", "agency_id": agency_of_role.get(role["id"]),
                                            "title": role.get("title", role["id"])})
            if role["id"] in lead_roles:
                entry["kind"] = "partnership_lead"
            elif role["id"] == scrutineer_role and entry["kind"] == "reviewer":
                entry["kind"] = "scrutineer"
    return people


def seed_demo(engine: Engine) -> Iterator[str]:
    """Store the demo arrangements (unchanged ones are skipped) and create missing demo users."""
    password_hash: str | None = None
    name_index = 0
    with Session(engine) as session:
        for filename in DEMO_FILES:
            path = EXAMPLES / filename
            doc = load(path.read_bytes(), filename=filename)
            pid = doc["partnership"]["id"]
            stored = store_version(session, pid, doc, author=DEMO_AUTHOR, change_note="demo arrangements")
            if stored.created:
                yield f"stored {pid} arrangements v{stored.number}"
            existing = {u.user_ref for u in session.exec(select(User).where(User.partnership_id == pid))}
            for ref, person in sorted(_people(doc).items()):
                name_index += 1
                if ref in existing:
                    continue
                password_hash = password_hash or hash_password(DEMO_PASSWORD)
                session.add(User(email=f"{ref.removeprefix('u-')}@demo.test",
                                 display_name=f"{_name(name_index)} ({person['title']})"[:200],
                                 user_ref=ref, kind=person["kind"], partnership_id=pid,
                                 agency_id=person["agency_id"], password_hash=password_hash))
        existing = {u.user_ref for u in session.exec(select(User).where(User.partnership_id.is_(None)))}
        for ref, email, name, kind in NATIONAL_USERS:
            if ref not in existing:
                password_hash = password_hash or hash_password(DEMO_PASSWORD)
                session.add(User(email=email, display_name=name, user_ref=ref, kind=kind, password_hash=password_hash))
        session.commit()
    if password_hash:
        yield "created demo users"


def demo_signins(engine: Engine) -> list[tuple[str, str]]:
    """The demo accounts worth printing: the highlighted people, one of each kind."""
    with Session(engine) as session:
        users = {u.user_ref: u for u in session.exec(select(User).where(User.user_ref.in_(HIGHLIGHTS)))}
    return [(users[ref].email, f"{users[ref].kind.replace('_', ' ')}: {users[ref].display_name}")
            for ref in HIGHLIGHTS if ref in users]


# --- demo activity: learning events (and a couple of cases) so the pages show something on first run ------------

_DEMO_EVENTS = [  # (kind, themes, factors, what happened, what was expected)
    ("near_miss", ["information-sharing"], ["tools-and-information-systems", "inter-agency-working"],
     "A referral sent on Friday evening sat in a shared inbox until Tuesday.",
     "Referrals are triaged within one working day."),
    ("harm", ["domestic-abuse", "whole-family"], ["task", "inter-agency-working"],
     "A domestic abuse notification did not reach the school before the child's next day there.",
     "The school's safeguarding lead hears of incidents before the next school day."),
    ("good_practice", ["vulnerable-babies"], ["organisation-and-culture"],
     "Health visitor and midwife held a joint visit before discharge for a baby with a known risk.",
     "Handover at discharge, usually by letter."),
    ("future_risk", ["children-not-in-school"], ["tools-and-information-systems"],
     "Elective home education records are not shared with health services.",
     "Agencies know which children are not in school."),
    ("near_miss", ["mental-health", "whole-family"], ["person", "environment"],
     "A parent's mental health crisis was assessed without asking about the children at home.",
     "Adult services ask about children in the household."),
    ("near_miss", ["risks-outside-the-family"], ["inter-agency-working", "task"],
     "Police intelligence about exploitation was not shared with the youth justice team.",
     "Exploitation concerns are shared at the next daily meeting."),
    ("good_practice", ["disability"], ["organisation-and-culture", "person"],
     "A social worker used a communication aid so a disabled child could give their views.",
     "The child's views are recorded in their own words."),
    ("harm", ["neglect"], ["organisation-and-culture", "task"],
     "Repeated missed health appointments were not seen as a pattern of neglect.",
     "Missed appointments for young children trigger a follow-up."),
    ("near_miss", ["rural-isolation"], ["environment", "tools-and-information-systems"],
     "A family without a phone signal missed a change of appointment sent by text.",
     "Families are reached by a route that works for them."),
]


def demo_activity_recorded(engine: Engine) -> bool:
    """Whether the demo's learning events (or any learning case) are already there."""
    from safeguarding.tables import Case

    with Session(engine) as session:
        return session.exec(select(Case.id).where(Case.process == "learning")).first() is not None


async def seed_demo_activity(engine: Engine, client, task_queue: str, partnership_id: str = "riverford-and-vale",
                             per_kind: int = 4) -> int:
    """Record a spread of learning events over the last year through the real intake, once."""
    from datetime import timedelta

    from safeguarding.accounts import Principal
    from safeguarding.clock import london_today
    from safeguarding.intake import LearningIn, record_learning
    from safeguarding.tables import Case

    with Session(engine) as session:
        if session.exec(select(Case).where(Case.process == "learning")).first() is not None:
            return 0
        reporters = [Principal.of(u) for u in session.exec(select(User).where(
            User.partnership_id == partnership_id, User.kind == "reviewer"))]
    if not reporters:
        return 0
    today, made = london_today(), 0
    for round_ in range(per_kind):
        for index, (kind, themes, factors, happened, expected) in enumerate(_DEMO_EVENTS):
            day = today - timedelta(days=7 + (round_ * len(_DEMO_EVENTS) + index) * 9 % 350)
            body = LearningIn(occurred_on=day, kind=kind, what_happened=happened, what_was_expected=expected,
                              agencies=["riverford-council"], factors=factors, themes=themes,
                              anonymous=(index + round_) % 4 == 0)
            await record_learning(engine, client, task_queue, reporters[(index + round_) % len(reporters)],
                                  partnership_id, body)
            made += 1
    return made
