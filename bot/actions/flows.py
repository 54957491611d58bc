"""Action items: add, close and list them, and file them in the team's backlog.

An item is stored first (with its audit event, in one transaction) and filed afterwards, outside any
transaction. When the backlog is down the item stays ``pending`` and ``file_pending`` (a periodic job) tries
again with exponential backoff. Across replicas each attempt is claimed by a conditional UPDATE, so an item is
filed once; only a process that dies between the backlog's answer and recording it can cause a second issue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.actions import service
from bot.actions.models import WHAT_MAX, ActionItem, BacklogState, ItemStatus
from bot.audit.service import append
from bot.backlog.base import Backlog, BacklogError, Ticket
from bot.errors import IllegalTransition, InvalidInput, NotPermitted
from bot.policy.models import Role
from bot.runs import service as runs
from bot.runs.models import run_label
from bot.words import SYSTEM_ACTOR, Person, Words
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
#: How long a filing attempt keeps other replicas away: longer than any backlog timeout.
CLAIM = timedelta(minutes=2)
LONGEST_DUE = timedelta(days=2 * 366)  # a due date years away is a typo

ADDED, DONE, FILED = "action_item.added", "action_item.done", "backlog.filed"


@dataclass(frozen=True)
class ItemView:
    """An action item as plain data for lists, the retrospective and the summaries."""

    id: int
    run_id: int
    what: str
    owner: str
    due_on: date
    status: ItemStatus
    overdue: bool
    created_by: str
    done_by: str | None
    backlog_url: str | None
    backlog_key: str | None
    backlog_state: BacklogState | None
    backlog_error: str | None

    @property
    def label(self) -> str:
        return f"AI-{self.id}"

    @property
    def run_label(self) -> str:
        return run_label(self.run_id)


@dataclass(frozen=True)
class FilingReport:
    filed: int = 0
    failed: int = 0


def parse_due(text: str) -> date:
    """A due date as typed (``YYYY-MM-DD``; Slack's date picker sends exactly that)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date; use YYYY-MM-DD.", field="due") from None


def retry_delay(attempts: int) -> timedelta:
    """30 s after the first failure, doubling, at most an hour."""
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 20)), LONGEST_WAIT)


class ActionItems:
    """The front door for action items. ``held`` roles are resolved by the caller, as for approvals."""

    def __init__(
        self,
        database: Database,
        *,
        backlog: Backlog[Any] | None,
        zone: ZoneInfo,
        clock: Callable[[], datetime] = utcnow,
        name_of: Callable[[str], str] = str,
        link_for: Callable[[int], str | None] = lambda _run_id: None,
    ) -> None:
        self.database = database
        self.backlog = backlog
        self.zone = zone
        self.clock = clock
        self.name_of = name_of  # a user id as the backlog's readers know the person
        self.link_for = link_for  # a run's thread, written into the filed issue

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def add(
        self, *, run_id: int, what: str, owner: str, due_on: date | str, actor: str, file_now: bool = True
    ) -> ItemView:
        """Store an action item (audited), then file it in the backlog if the team has one.

        ``file_now=False`` leaves the filing to the next ``file_pending`` (a caller that must answer at once).
        """
        text, due = self.validate(what=what, owner=owner, due_on=due_on)
        now = self.clock()
        with self.database.transaction() as session:
            run = runs.get(session, run_id=run_id)
            item = ActionItem(
                run_id=run.id,
                what=text,
                owner=owner,
                due_on=due,
                status=ItemStatus.OPEN.value,
                version=1,
                created_by=actor,
                created_at=now,
                backlog_kind=self.backlog.kind if self.backlog else None,
                backlog_state=BacklogState.PENDING.value if self.backlog else None,
                backlog_attempts=0,
            )
            session.add(item)
            session.flush()
            append(
                session,
                actor=actor,
                action=ADDED,
                run_id=run.id,
                payload={"item": item.id, "what": text, "owner": owner, "due": due.isoformat()},
                at=now,
            )
            item_id = item.id
        if self.backlog is not None and file_now:
            self._file(item_id, attempts=0)
        return self.get(item_id)

    def done(self, *, item_id: int, actor: str, held: Set[Role] = frozenset()) -> ItemView:
        """Close an item. Its owner, whoever raised it, the run's owner or a reliability partner may."""
        for _ in range(5):
            now = self.clock()
            with self.database.transaction() as session:
                item = service.get(session, item_id=item_id)
                if item.item_status is ItemStatus.DONE:
                    raise IllegalTransition(
                        Words.of(f"{item.label} was already marked done by ", Person(item.done_by or "?"), ".")
                    )
                run = runs.get(session, run_id=item.run_id)
                if actor not in (item.owner, item.created_by, run.owner) and Role.RELIABILITY_PARTNER not in held:
                    raise NotPermitted(
                        Words.of(
                            f"Only {item.label}'s owner ",
                            Person(item.owner),
                            ", whoever raised it, the run's owner or a reliability partner can mark it done.",
                        )
                    )
                try:
                    service.mark_done(session, item=item, by=actor, at=now)
                except service.StaleItem:
                    continue
                append(session, actor=actor, action=DONE, run_id=item.run_id, payload={"item": item.id}, at=now)
            return self.get(item_id)
        raise IllegalTransition(f"AI-{item_id} kept changing while it was being closed; try again.")

    def get(self, item_id: int) -> ItemView:
        with self.database.transaction() as session:
            return self._view(service.get(session, item_id=item_id))

    def open_items(self, *, owner: str | None = None, limit: int = 100) -> list[ItemView]:
        """Open items, overdue first then soonest due (what ``/chaos actions`` lists)."""
        with self.database.transaction() as session:
            return [self._view(item) for item in service.open_items(session, owner=owner, limit=limit)]

    def open_counts(self, *, owner: str | None = None) -> tuple[int, int]:
        """(open, overdue): the true counts, however many items a list shows."""
        with self.database.transaction() as session:
            return service.open_counts(session, today=self.today(), owner=owner)

    def of_run(self, run_id: int) -> list[ItemView]:
        with self.database.transaction() as session:
            return [self._view(item) for item in service.of_run(session, run_id=run_id)]

    def file_pending(self, *, limit: int = 20) -> FilingReport:
        """File the items still waiting for the backlog whose retry is due (a periodic job; safe on every replica)."""
        if self.backlog is None:
            return FilingReport()
        with self.database.transaction() as session:
            due = service.due_for_filing(session, now=self.clock(), limit=limit)
        filed = failed = 0
        for item_id, attempts in due:
            outcome = self._file(item_id, attempts=attempts)
            filed += outcome is True
            failed += outcome is False
        return FilingReport(filed=filed, failed=failed)

    def validate(self, *, what: str, owner: str, due_on: date | str) -> tuple[str, date]:
        """The form's checks, without the database (for errors inside the ack): the cleaned text and the date.

        ``InvalidInput.field`` is ``what``, ``owner`` or ``due``: name the form's blocks after them.
        """
        text = " ".join(what.split())
        if not text:
            raise InvalidInput("Say what needs doing.", field="what")
        if len(text) > WHAT_MAX:
            raise InvalidInput(
                f"Keep it to {WHAT_MAX} characters (this is {len(text)}); details belong in the backlog.", field="what"
            )
        if not owner.strip():
            raise InvalidInput("Choose who owns it.", field="owner")
        due = parse_due(due_on) if isinstance(due_on, str) else due_on
        today = self.today()
        if due < today:
            raise InvalidInput(f"The due date {due.isoformat()} is in the past (today is {today}).", field="due")
        if due > today + LONGEST_DUE:
            raise InvalidInput(f"The due date {due.isoformat()} is more than two years away.", field="due")
        return text, due

    # -- inside ------------------------------------------------------------------------------------------

    def _file(self, item_id: int, *, attempts: int) -> bool | None:
        """One filing attempt: True filed, False failed (retried later), None when another replica has it."""
        assert self.backlog is not None
        with self.database.transaction() as session:
            unfiled = service.get(session, item_id=item_id)
            owner, run_id = unfiled.owner, unfiled.run_id  # set when the item was raised, never changed
        # The injected resolvers may ask Slack: called before the claim's transaction, never inside one.
        owner_name, link = self.name_of(owner), self.link_for(run_id)
        now = self.clock()
        with self.database.transaction() as session:
            if not service.claim_filing(session, item_id=item_id, attempts=attempts, now=now, until=now + CLAIM):
                return None
            item = service.get(session, item_id=item_id)
            run = runs.get(session, run_id=item.run_id)
            ticket = Ticket(
                item=item.label,
                run=run.label,
                experiment=run.experiment_id,
                what=item.what,
                owner=owner_name,
                due_on=item.due_on,
                link=link,
            )
        attempt = attempts + 1
        try:
            filed = self.backlog.file(ticket)
        except BacklogError as exc:
            retry_at = self.clock() + retry_delay(attempt)
            log.warning(
                "filing %s in the %s backlog failed (attempt %d): %s",
                ticket.item,
                self.backlog.kind,
                attempt,
                exc.message,
            )
            with self.database.transaction() as session:
                service.record_failure(session, item_id=item_id, attempt=attempt, error=exc.message, retry_at=retry_at)
            return False
        with self.database.transaction() as session:
            if service.record_filed(session, item_id=item_id, attempt=attempt, url=filed.url, key=filed.key):
                append(
                    session,
                    actor=SYSTEM_ACTOR,
                    action=FILED,
                    run_id=item.run_id,
                    payload={"item": item_id, "kind": self.backlog.kind, "url": filed.url, "key": filed.key},
                    at=self.clock(),
                )
        return True

    def _view(self, item: ActionItem) -> ItemView:
        return ItemView(
            id=item.id,
            run_id=item.run_id,
            what=item.what,
            owner=item.owner,
            due_on=item.due_on,
            status=item.item_status,
            overdue=service.is_overdue(item, self.today()),
            created_by=item.created_by,
            done_by=item.done_by,
            backlog_url=item.backlog_url,
            backlog_key=item.backlog_key,
            backlog_state=BacklogState(item.backlog_state) if item.backlog_state else None,
            backlog_error=item.backlog_last_error,
        )
