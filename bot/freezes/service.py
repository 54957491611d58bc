"""Delivery freezes: add, list, remove (approvers only), find the freeze covering a start, record an override.

Every change is one transaction with its audit event. Adding takes the audit chain's head lock first, so
two replicas adding overlapping freezes at the same moment are ordered and the second sees the first.
Removing is a versioned transition (a conditional UPDATE on ``version``, re-read and retried on a race).
Whether the actor is an approver is the caller's answer (``approver=``): the policy decides it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.audit import service as audit
from bot.audit.models import AuditHead
from bot.errors import IllegalTransition, InvalidInput, NotFound, NotPermitted
from bot.freezes.health import FeedHealth, feed_health
from bot.freezes.models import MANUAL, Freeze, feed_source, freeze_label
from bot.policy.models import Policy
from bot.vocabulary import format_local
from bot.words import Words, listing, who
from storage.db import Database, StaleRow, retrying, rowcount, utcnow

T = TypeVar("T")
MAX_REASON = 500
LOCAL_FORMAT = "YYYY-MM-DDTHH:MM"
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_FREEZE_ID = re.compile(r"^(?:FRZ-?)?(\d{1,9})$", re.IGNORECASE)


class StaleFreeze(StaleRow):
    """Someone changed the freeze between our read and our write; re-read and decide again."""


@dataclass(frozen=True)
class FreezeRequest:
    """A freeze to add: aware start and end, environments (empty: all), the reason people will read."""

    starts_at: datetime
    ends_at: datetime
    reason: str
    environments: tuple[str, ...] = ()


def parse_local(text: str, zone: ZoneInfo, *, field: str) -> datetime:
    """``2026-12-10T09:00`` in the team's zone → an aware datetime; a clear error for anything else."""
    value = text.strip()
    if not _LOCAL.match(value):
        raise InvalidInput(f"{value!r} is not a time; write it as {LOCAL_FORMAT}, e.g. 2026-12-10T09:00.", field=field)
    try:
        naive = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    except ValueError:
        raise InvalidInput(f"{value} is not a real date and time ({LOCAL_FORMAT}).", field=field) from None
    moment = naive.replace(tzinfo=zone)
    if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{value} does not exist in {zone.key}: the clocks skip that hour. Pick a time an hour later.",
            field=field,
        )
    return moment


def parse_freeze_id(text: str) -> int:
    match = _FREEZE_ID.match(text.strip())
    if not match:
        raise InvalidInput(
            f"{text.strip()!r} is not a freeze id; freeze ids look like FRZ-3 (see `/chaos freeze list`)."
        )
    return int(match.group(1))


def window_text(freeze: Freeze, zone: ZoneInfo) -> str:
    return f"{format_local(freeze.starts_at, zone)} to {format_local(freeze.ends_at, zone)}"


def environments_text(freeze: Freeze) -> str:
    return "all environments" if freeze.everywhere else ", ".join(freeze.environments)


def describe(freeze: Freeze, zone: ZoneInfo) -> Words:
    """``FRZ-3 · Thu 10 Dec 2026 09:00 AEDT to … · all environments · "Client delivery" · added by @rita``."""
    origin: Words = (
        Words.of(f"from the calendar {freeze.added_by}")
        if freeze.from_feed
        else Words.of("added by ", who(freeze.added_by))
    )
    return Words.of(
        f"{freeze.label} · {window_text(freeze, zone)} · {environments_text(freeze)} · \u201c{freeze.reason}\u201d · ",
        origin,
    )


def listing_words(freezes: Sequence[Freeze], zone: ZoneInfo, feeds: Sequence[FeedHealth] = ()) -> Words:
    """The answer to ``/chaos freeze list``: one line per current or coming freeze, then a line per calendar
    feed that needs attention (not read, or read with parts skipped: the list is then not the whole truth)."""
    if not freezes:
        answer = Words.of("No freeze is in force or coming. Approvers add one with `/chaos freeze add`.")
    else:
        lines = [Words.of("• ", describe(freeze, zone)) for freeze in freezes]
        answer = Words.of("Current and coming freezes:\n", listing(lines, "\n"))
    notes = [Words.of("⚠ ", feed.words(zone)) for feed in feeds if feed.needs_attention]
    return Words.of(answer, "\n", listing(notes, "\n")) if notes else answer


class Freezes:
    """The freeze rules of one deployment: the policy names the environments and the calendar feeds."""

    def __init__(self, db: Database, policy: Policy, *, zone: ZoneInfo, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.policy = policy
        self.zone = zone
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------------

    def upcoming(self) -> list[Freeze]:
        """Current and coming freezes (manual and from the policy's calendars), soonest first."""
        now = self.clock()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Freeze)
                .where(Freeze.ends_at > now, Freeze.removed_at.is_(None), Freeze.source.in_(self._sources()))
                .order_by(Freeze.starts_at, Freeze.id)
            )
            return list(rows)

    def covering(self, environment: str, moment: datetime) -> list[Freeze]:
        """The freezes in force for ``environment`` at ``moment``, the one ending last first."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Freeze)
                .where(
                    Freeze.starts_at <= moment,
                    Freeze.ends_at > moment,
                    Freeze.removed_at.is_(None),
                    Freeze.source.in_(self._sources()),
                )
                .order_by(Freeze.ends_at.desc(), Freeze.id)
            )
            return [freeze for freeze in rows if freeze.covers(environment, moment)]

    def feeds(self) -> list[FeedHealth]:
        """How each of the policy's calendar feeds is doing (read, stale, degraded, gone empty)."""
        return feed_health(self.db, self.policy.freeze_calendars, self.clock())

    def get(self, freeze_id: int) -> Freeze:
        with self.db.transaction() as session:
            return _get(session, freeze_id)

    # -- changing --------------------------------------------------------------------------------

    def check(self, request: FreezeRequest) -> FreezeRequest:
        """Validate without the database (the form answers inside the ack): times, environments, reason."""
        now = self.clock()
        reason = " ".join(request.reason.split())
        if not reason:
            raise InvalidInput("A freeze needs a reason people will read, e.g. the client delivery.", field="reason")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"The reason is {len(reason)} characters; keep it under {MAX_REASON}.", field="reason")
        start, end = request.starts_at, request.ends_at
        if end <= start:
            raise InvalidInput(
                f"The freeze ends ({format_local(end, self.zone)}) before it starts ({format_local(start, self.zone)}):"
                " give an end after the start.",
                field="ends_at",
            )
        if end <= now:
            raise InvalidInput(
                f"That window is already over (it ended {format_local(end, self.zone)}): "
                "a freeze must end in the future.",
                field="ends_at",
            )
        environments = tuple(dict.fromkeys(name.strip().lower() for name in request.environments))
        unknown = [name for name in environments if name not in self.policy.environments]
        if unknown:
            known = ", ".join(self.policy.environments)
            raise InvalidInput(
                f"There is no environment {unknown[0]!r} in the policy; known: {known} (or leave --env out for all).",
                field="environments",
            )
        return FreezeRequest(starts_at=start, ends_at=end, reason=reason, environments=environments)

    def add(self, actor: str, request: FreezeRequest, *, approver: bool) -> Freeze:
        """Add a manual freeze. Refused for non-approvers, bad input, or an overlap with the same environments."""
        if not approver:
            raise NotPermitted("Only approvers can add a freeze.")
        valid = self.check(request)

        def apply(session: Session) -> Freeze:
            _order_changes(session)
            clash = self._overlapping(session, valid)
            if clash is not None:
                raise InvalidInput(
                    Words.of(
                        "That freeze overlaps ",
                        describe(clash, self.zone),
                        ". Choose times outside it"
                        + ("" if clash.from_feed else f", or remove {clash.label} first")
                        + (
                            ", or limit the new freeze to another environment with --env."
                            if clash.environments
                            else "."
                        ),
                    ),
                    field="starts_at",
                )
            freeze = Freeze(
                starts_at=valid.starts_at,
                ends_at=valid.ends_at,
                environments=list(valid.environments),
                reason=valid.reason,
                added_by=actor,
                added_at=self.clock(),
                source=MANUAL,
                version=1,
            )
            session.add(freeze)
            session.flush()
            audit.append(session, actor=actor, action="freeze.added", payload=_payload(freeze))
            return freeze

        return retrying(self.db, apply)

    def remove(self, actor: str, freeze_id: int, *, approver: bool) -> Freeze:
        """Remove a manual freeze (its row stays, marked removed)."""
        if not approver:
            raise NotPermitted("Only approvers can remove a freeze.")

        def apply(session: Session) -> Freeze:
            freeze = _get(session, freeze_id)
            if freeze.removed_at is not None:
                raise IllegalTransition(
                    Words.of(
                        f"{freeze.label} was already removed by ",
                        who(freeze.removed_by or "?"),
                        f" at {format_local(freeze.removed_at, self.zone)}.",
                    )
                )
            if freeze.from_feed:
                raise InvalidInput(
                    f"{freeze.label} comes from the calendar {freeze.added_by}: remove the event there "
                    "and the next poll drops it."
                )
            now = self.clock()
            result = session.execute(
                update(Freeze)
                .where(Freeze.id == freeze.id, Freeze.version == freeze.version)
                .values(removed_at=now, removed_by=actor, version=freeze.version + 1)
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) != 1:
                raise StaleFreeze(freeze.label)
            session.refresh(freeze)
            audit.append(session, actor=actor, action="freeze.removed", payload=_payload(freeze))
            return freeze

        return retrying(self.db, apply)

    def record_override(self, run_id: int, actor: str, reason: str, freeze: Freeze, *, approver: bool) -> None:
        """Record that ``actor`` starts ``run_id`` inside ``freeze`` anyway, and why (own transaction).

        To record it in the same transaction as the start, call ``append_override`` from inside that one.
        """
        with self.db.transaction() as session:
            append_override(session, run_id=run_id, actor=actor, reason=reason, freeze=freeze, approver=approver)

    # -- internals -------------------------------------------------------------------------------

    def _sources(self) -> list[str]:
        return [MANUAL, *(feed_source(calendar.key) for calendar in self.policy.freeze_calendars)]

    def _overlapping(self, session: Session, request: FreezeRequest) -> Freeze | None:
        rows = session.scalars(
            select(Freeze)
            .where(
                Freeze.starts_at < request.ends_at,
                Freeze.ends_at > request.starts_at,
                Freeze.removed_at.is_(None),
                Freeze.source.in_(self._sources()),
            )
            .order_by(Freeze.starts_at, Freeze.id)
        )
        wanted = set(request.environments)
        for freeze in rows:
            if freeze.everywhere or not wanted or wanted & set(freeze.environments):
                return freeze
        return None


def check_override_reason(reason: str) -> str:
    """The reason given for starting inside a freeze, or an error for the form's reason field."""
    text = " ".join(reason.split())
    if not text:
        raise InvalidInput(
            "Say why this run must start inside the freeze; the reason goes into the record.", field="reason"
        )
    if len(text) > MAX_REASON:
        raise InvalidInput(f"The reason is {len(text)} characters; keep it under {MAX_REASON}.", field="reason")
    return text


def append_override(session: Session, *, run_id: int, actor: str, reason: str, freeze: Freeze, approver: bool) -> None:
    """Audit ``freeze.overridden`` in the caller's transaction: who started which run inside which freeze, and why."""
    if not approver:
        raise NotPermitted(f"Only an approver can start a run inside {freeze.label} ({freeze.reason}).")
    text = check_override_reason(reason)
    audit.append(
        session,
        actor=actor,
        action="freeze.overridden",
        run_id=run_id,
        payload={**_payload(freeze), "override_reason": text},
    )


def _get(session: Session, freeze_id: int) -> Freeze:
    freeze = session.get(Freeze, freeze_id, populate_existing=True)
    if freeze is None:
        raise NotFound(f"There is no {freeze_label(freeze_id)}; `/chaos freeze list` shows the current ones.")
    return freeze


def _order_changes(session: Session) -> None:
    # The audit head row is locked by every audited change anyway; taking it first makes the overlap
    # check and the insert one critical section across replicas (SQLite already serialises writers).
    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())


def _payload(freeze: Freeze) -> dict[str, object]:
    return {
        "freeze": freeze.id,
        "starts_at": freeze.starts_at.isoformat(),
        "ends_at": freeze.ends_at.isoformat(),
        "environments": list(freeze.environments) or "all",
        "reason": freeze.reason,
        "source": freeze.source,
    }
