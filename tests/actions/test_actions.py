"""Action items: added with checks, closed by the people a reliability team expects, listed overdue first;
every change is in the audit chain."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.actions.flows import ActionItems, parse_due, retry_delay
from bot.actions.models import ItemStatus
from bot.audit.models import AuditEvent
from bot.audit.service import verify
from bot.errors import IllegalTransition, InvalidInput, NotFound, NotPermitted
from bot.policy.models import Role
from storage.db import Database
from tests.conftest import Clock
from tests.reports.seed import SYDNEY, add_run

OWNER, FIXER, RAISER, OUTSIDER, PARTNER = "U0OWNER", "U0FIXER", "U0RAISER", "U0NOBODY", "U0RELIAB"


@pytest.fixture
def items(db: Database, clock: Clock) -> ActionItems:
    return ActionItems(db, backlog=None, zone=SYDNEY, clock=clock)


@pytest.fixture
def run_id(db: Database, clock: Clock) -> int:
    with db.transaction() as session:
        return add_run(
            session, experiment="CE-01", state="completed", planned=clock.now - timedelta(days=1), owner=OWNER
        )


def today(clock: Clock) -> date:
    return clock.now.astimezone(SYDNEY).date()


def events(db: Database) -> list[tuple[str, str, dict[str, object]]]:
    with db.transaction() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        return [(event.action, event.actor, json.loads(event.payload)) for event in rows]


def test_add_stores_the_item_and_audits_it(db: Database, items: ActionItems, run_id: int, clock: Clock) -> None:
    due = today(clock) + timedelta(days=7)
    item = items.add(run_id=run_id, what="  Add a  cache\nfallback ", owner=FIXER, due_on=due, actor=RAISER)
    assert (item.what, item.owner, item.due_on, item.status, item.overdue) == (
        "Add a cache fallback",
        FIXER,
        due,
        ItemStatus.OPEN,
        False,
    )
    assert item.run_label == f"RUN-{run_id}" and item.label == f"AI-{item.id}"
    assert events(db) == [
        (
            "action_item.added",
            RAISER,
            {"item": item.id, "what": "Add a cache fallback", "owner": FIXER, "due": due.isoformat()},
        )
    ]
    assert items.of_run(run_id) == [item]


@pytest.mark.parametrize(
    ("what", "owner", "days", "field", "says"),
    [
        ("   ", FIXER, 1, "what", "Say what needs doing."),
        ("x" * 301, FIXER, 1, "what", "Keep it to 300 characters (this is 301)"),
        ("fix", " ", 1, "owner", "Choose who owns it."),
        ("fix", FIXER, -1, "due", "is in the past"),
        ("fix", FIXER, 800, "due", "more than two years away"),
    ],
)
def test_add_refuses_bad_input_naming_the_field(
    db: Database, items: ActionItems, run_id: int, clock: Clock, what: str, owner: str, days: int, field: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        items.add(run_id=run_id, what=what, owner=owner, due_on=today(clock) + timedelta(days=days), actor=RAISER)
    assert caught.value.field == field and says in caught.value.message
    assert events(db) == []


def test_due_today_is_accepted_and_dates_are_parsed(items: ActionItems, run_id: int, clock: Clock) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock).isoformat(), actor=RAISER)
    assert item.due_on == today(clock)
    with pytest.raises(InvalidInput, match="not a date; use YYYY-MM-DD"):
        parse_due("next friday")


def test_add_to_a_run_that_does_not_exist(db: Database, items: ActionItems, clock: Clock) -> None:
    with pytest.raises(NotFound, match="There is no RUN-999"):
        items.add(run_id=999, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)


@pytest.mark.parametrize("closer", [FIXER, RAISER, OWNER])
def test_the_owner_the_raiser_or_the_runs_owner_may_close(
    db: Database, items: ActionItems, run_id: int, clock: Clock, closer: str
) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)
    clock.advance(hours=1)
    done = items.done(item_id=item.id, actor=closer)
    assert (done.status, done.done_by) == (ItemStatus.DONE, closer)
    assert events(db)[-1] == ("action_item.done", closer, {"item": item.id})
    with db.transaction() as session:
        assert verify(session).ok


def test_a_reliability_partner_may_close_anyone_elses(items: ActionItems, run_id: int, clock: Clock) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)
    assert items.done(item_id=item.id, actor=PARTNER, held={Role.RELIABILITY_PARTNER}).status is ItemStatus.DONE


def test_someone_else_may_not_close_it(db: Database, items: ActionItems, run_id: int, clock: Clock) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)
    with pytest.raises(NotPermitted) as caught:
        items.done(item_id=item.id, actor=OUTSIDER, held={Role.STAKEHOLDER})
    assert f"Only AI-{item.id}'s owner @{FIXER}" in caught.value.message
    assert items.get(item.id).status is ItemStatus.OPEN


def test_closing_twice_says_who_closed_it(items: ActionItems, run_id: int, clock: Clock) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)
    items.done(item_id=item.id, actor=FIXER)
    with pytest.raises(IllegalTransition, match=f"AI-{item.id} was already marked done by @{FIXER}"):
        items.done(item_id=item.id, actor=RAISER)
    with pytest.raises(NotFound):
        items.done(item_id=item.id + 100, actor=RAISER)


def test_two_simultaneous_done_clicks_close_it_once(
    db: Database, items: ActionItems, run_id: int, clock: Clock
) -> None:
    item = items.add(run_id=run_id, what="fix", owner=FIXER, due_on=today(clock), actor=RAISER)
    barrier, outcomes = threading.Barrier(2), []

    def click(actor: str) -> None:
        barrier.wait()
        try:
            items.done(item_id=item.id, actor=actor)
            outcomes.append("done")
        except IllegalTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=click, args=(actor,)) for actor in (FIXER, RAISER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["done", "refused"]
    assert [action for action, _, _ in events(db)].count("action_item.done") == 1


def test_open_items_are_listed_overdue_first(items: ActionItems, run_id: int, clock: Clock) -> None:
    start = today(clock)
    later = items.add(run_id=run_id, what="later", owner=FIXER, due_on=start + timedelta(days=10), actor=RAISER)
    soon = items.add(run_id=run_id, what="soon", owner=OWNER, due_on=start + timedelta(days=2), actor=RAISER)
    closed = items.add(run_id=run_id, what="closed", owner=FIXER, due_on=start + timedelta(days=1), actor=RAISER)
    first = items.add(run_id=run_id, what="first", owner=FIXER, due_on=start + timedelta(days=5), actor=RAISER)
    items.done(item_id=closed.id, actor=FIXER)
    clock.advance(days=6)  # soon and first are now overdue

    listed = items.open_items()
    assert [(view.what, view.overdue) for view in listed] == [("soon", True), ("first", True), ("later", False)]
    assert [view.id for view in items.open_items(owner=FIXER)] == [first.id, later.id]
    assert soon.id not in [view.id for view in items.open_items(owner=FIXER)]


def test_retries_back_off_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(50) == timedelta(hours=1)


def test_the_form_can_be_checked_without_the_database(items: ActionItems, clock: Clock) -> None:
    assert items.validate(what=" fix  it ", owner=FIXER, due_on=today(clock).isoformat()) == ("fix it", today(clock))
    with pytest.raises(InvalidInput) as caught:
        items.validate(what="fix", owner=FIXER, due_on="2020-01-01")
    assert caught.value.field == "due"


def test_counts_per_run_for_the_export(db: Database, items: ActionItems, run_id: int, clock: Clock) -> None:
    from bot.actions.service import counts_by_run

    first = items.add(run_id=run_id, what="a", owner=FIXER, due_on=today(clock), actor=RAISER)
    items.add(run_id=run_id, what="b", owner=FIXER, due_on=today(clock), actor=RAISER)
    items.done(item_id=first.id, actor=FIXER)
    with db.transaction() as session:
        assert counts_by_run(session, run_ids=[run_id, run_id + 1]) == {run_id: (2, 1)}
        assert counts_by_run(session, run_ids=[]) == {}


def test_the_open_list_is_capped_but_its_counts_are_true(
    db: Database, items: ActionItems, run_id: int, clock: Clock
) -> None:
    from bot.interface.learning.messages import LISTED, items_message
    from bot.interface.render import SLACK

    for n in range(122):
        items.add(
            run_id=run_id, what=f"item {n}", owner=FIXER, due_on=today(clock) + timedelta(days=n + 1), actor=RAISER
        )
    clock.advance(days=3)  # the first two are overdue now
    listed = items.open_items(limit=LISTED)
    assert len(listed) == LISTED and [i.overdue for i in listed[:3]] == [True, True, False]
    assert items.open_counts() == (122, 2) and items.open_counts(owner=OUTSIDER) == (0, 0)

    message = items_message(listed, SLACK, total=122, overdue=2)
    assert message.text == "Open action items: 122 (2 overdue)"
    assert "… and 82 more" in json.dumps(message.blocks, ensure_ascii=False) and len(message.blocks) <= 50
