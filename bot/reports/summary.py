"""The monthly and quarterly summaries, computed in SQL.

Every figure is an aggregate the database computes over indexed columns; Python receives counts and the
few rows it lists (a month's runs, a quarter's refuted hypotheses), never every run. Definitions:

- A run belongs to the period in which it was **planned to start** (``runs.planned_start``, team time zone).
- **Hypotheses** are judged over the runs that ran (completed, aborted, failed): held / refuted from their
  outcome, not tested when the outcome says neither (or none was recorded).
- **Recovery** is over the outcomes with a recovery time: mean and worst against each run's RTO; the worst
  is the run that overshot its RTO the most (or came closest to it).
- **Action items** (the whole team's, not only the period's runs): opened and done during the period; open
  and overdue at the end of the period (or now, for the current period). Overdue: due before that day.
- **Not run in 90 days**: catalogue entries with no run started in the 90 days before the end of the period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from bot.actions.models import ActionItem
from bot.records.models import Outcome
from bot.reports.periods import Period, PeriodKind
from bot.runs.models import RAN, Run, RunState
from bot.words import SYSTEM_ACTOR

STALE_AFTER = timedelta(days=90)
LEARNING_ITEMS = 5  # action items listed per refuted experiment in the quarterly update

LinkFor = Callable[[int], str | None]


@dataclass(frozen=True)
class Hypotheses:
    held: int = 0
    refuted: int = 0
    not_tested: int = 0


@dataclass(frozen=True)
class Count:
    name: str
    count: int


@dataclass(frozen=True)
class Recovery:
    measured: int = 0  # runs with a recovery time
    mean_seconds: float | None = None
    mean_rto_seconds: float | None = None
    met: int = 0
    missed: int = 0
    worst_run_id: int | None = None
    worst_seconds: float | None = None
    worst_rto_seconds: float | None = None


@dataclass(frozen=True)
class ActionCounts:
    opened: int = 0
    done: int = 0
    open: int = 0
    overdue: int = 0


@dataclass(frozen=True)
class NotRun:
    experiment_id: str
    last_started: datetime | None  # None: never run


@dataclass(frozen=True)
class RunLine:
    run_id: int
    experiment_id: str
    environment: str
    owner: str
    state: str
    planned_start: datetime
    hypothesis_held: bool | None
    recovery_seconds: float | None
    rto_seconds: float | None
    reason: str | None  # the breach, or why it ended
    link: str | None  # the run's thread, when the interface knows it


@dataclass(frozen=True)
class MonthTrend:
    period: str
    runs: int
    completed: int
    aborted: int
    failed: int
    refuted: int
    actions_opened: int


@dataclass(frozen=True)
class LearningItem:
    item_id: int
    run_id: int
    what: str
    owner: str
    status: str
    backlog_url: str | None


@dataclass(frozen=True)
class Learning:
    """An experiment whose hypothesis was refuted in the period, and the action items that came of it."""

    experiment_id: str
    refuted: int
    last_run_id: int
    last_breach: str | None
    items_total: int
    items_open: int
    items: list[LearningItem]


@dataclass(frozen=True)
class Summary:
    period: Period
    as_of: datetime  # the end of the period, or now for the current one
    runs_total: int
    outcomes: list[Count]  # runs per state, most first
    hypotheses: Hypotheses
    aborts: list[Count]  # per cause
    abort_reasons: list[Count]  # the most frequent reasons
    recovery: Recovery
    actions: ActionCounts
    not_run: list[NotRun]
    runs: list[RunLine] = field(default_factory=list)  # monthly only
    trend: list[MonthTrend] = field(default_factory=list)  # quarterly only
    learnings: list[Learning] = field(default_factory=list)  # quarterly only

    @property
    def kind(self) -> PeriodKind:
        return self.period.kind


def summarise(
    session: Session,
    period: Period,
    *,
    experiments: Sequence[str],
    zone: ZoneInfo,
    now: datetime,
    link_for: LinkFor | None = None,
    runs_limit: int | None = None,
) -> Summary:
    """The summary of a month or a quarter. ``experiments``: the catalogue's ids (for "not run in 90 days")."""
    start, end = period.start(zone), period.end(zone)
    as_of = min(end, now)
    in_period = and_(Run.planned_start >= start, Run.planned_start < end)
    outcomes, hypotheses, aborts, recovery = _period_counts(session, in_period)
    monthly = period.kind is PeriodKind.MONTH
    return Summary(
        period=period,
        as_of=as_of,
        runs_total=sum(count.count for count in outcomes),
        outcomes=outcomes,
        hypotheses=hypotheses,
        aborts=aborts,
        abort_reasons=_abort_reasons(session, in_period),
        recovery=_with_worst(session, in_period, recovery),
        actions=_actions(session, start, end, as_of, zone),
        not_run=_not_run(session, experiments, as_of),
        runs=_run_lines(session, in_period, link_for, runs_limit) if monthly else [],
        trend=[] if monthly else [_trend(session, month, zone) for month in period.months()],
        learnings=[] if monthly else _learnings(session, in_period),
    )


def _period_counts(
    session: Session, in_period: ColumnElement[bool]
) -> tuple[list[Count], Hypotheses, list[Count], Recovery]:
    """Runs per state, hypotheses, abort causes and recovery sums from one GROUP BY over the period's runs.

    Only the period's range is in the WHERE clause, so the planner walks ``(planned_start, state)`` rather
    than the far less selective index on ``state`` alone. Sums (not means) per group, so they add up exactly.
    """
    seconds, rto = Outcome.recovery_seconds, Outcome.rto_seconds
    cause = case((Run.state == RunState.ABORTED.value, _abort_cause()), else_=None)
    rows = session.execute(
        select(
            Run.state,
            Outcome.hypothesis_held,
            cause,
            func.count(),
            func.count(seconds),
            func.sum(seconds),
            func.sum(case((seconds.is_not(None), rto), else_=None)),
            func.sum(case((seconds <= rto, 1), else_=0)),
            func.sum(case((seconds > rto, 1), else_=0)),
        )
        .select_from(Run)
        .outerjoin(Outcome, Outcome.run_id == Run.id)
        .where(in_period)
        .group_by(Run.state, Outcome.hypothesis_held, cause)
    ).all()
    states: dict[str, int] = {}
    verdicts = {True: 0, False: 0, None: 0}
    causes: dict[str, int] = {}
    measured, total_seconds, total_rto, met, missed = 0, 0.0, 0.0, 0, 0
    for state, held, why, count, timed, seconds_sum, rto_sum, met_count, missed_count in rows:
        states[state] = states.get(state, 0) + count
        if state in RAN:
            verdicts[held] += count
        if why is not None:
            causes[why] = causes.get(why, 0) + count
        if timed:
            measured += timed
            total_seconds += float(seconds_sum)
            total_rto += float(rto_sum)
            met += int(met_count or 0)
            missed += int(missed_count or 0)
    hypotheses = Hypotheses(held=verdicts[True], refuted=verdicts[False], not_tested=verdicts[None])
    recovery = Recovery()
    if measured:
        recovery = Recovery(
            measured=measured,
            mean_seconds=total_seconds / measured,
            mean_rto_seconds=total_rto / measured,
            met=met,
            missed=missed,
        )
    return _most_first(states), hypotheses, _most_first(causes), recovery


def _most_first(counts: dict[str, int]) -> list[Count]:
    return [Count(name, count) for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _abort_cause() -> ColumnElement[str]:
    return case(
        (Outcome.breach.is_not(None), literal("stop condition breached")),
        (Run.end_reason.like("controller lost%"), literal("controller lost")),
        (Run.ended_by == SYSTEM_ACTOR, literal("stopped by chaosbot")),
        else_=literal("stopped by a person"),
    )


def _abort_reasons(session: Session, in_period: ColumnElement[bool], top: int = 5) -> list[Count]:
    # The state test sits inside the expression, not the WHERE clause, for the same reason as above.
    reason = case(
        (
            Run.state == RunState.ABORTED.value,
            func.coalesce(Outcome.breach, Run.end_reason, literal("(no reason given)")),
        ),
        else_=None,
    )
    rows = session.execute(
        select(reason, func.count())
        .select_from(Run)
        .outerjoin(Outcome, Outcome.run_id == Run.id)
        .where(in_period)
        .group_by(reason)
        .having(reason.is_not(None))
        .order_by(func.count().desc(), reason)
        .limit(top)
    )
    return [Count(name, count) for name, count in rows]


def _with_worst(session: Session, in_period: ColumnElement[bool], recovery: Recovery) -> Recovery:
    """The run that overshot its RTO the most (or came closest to it)."""
    if not recovery.measured:
        return recovery
    seconds, rto = Outcome.recovery_seconds, Outcome.rto_seconds
    worst = session.execute(
        select(Run.id, seconds, rto)
        .join(Outcome, Outcome.run_id == Run.id)
        .where(in_period, seconds.is_not(None))
        .order_by((seconds - rto).desc(), Run.id)
        .limit(1)
    ).one()
    return replace(
        recovery,
        worst_run_id=int(worst[0]),
        worst_seconds=float(worst[1] or 0.0),  # never None: filtered above
        worst_rto_seconds=float(worst[2]),
    )


def _actions(session: Session, start: datetime, end: datetime, as_of: datetime, zone: ZoneInfo) -> ActionCounts:
    # An item due on the period's last day is overdue at its end (midnight of the next day), not before.
    today: date = as_of.astimezone(zone).date()
    still_open = and_(ActionItem.created_at < as_of, or_(ActionItem.done_at.is_(None), ActionItem.done_at >= as_of))
    opened = select(func.count()).where(ActionItem.created_at >= start, ActionItem.created_at < end)
    done = select(func.count()).where(ActionItem.done_at >= start, ActionItem.done_at < end)
    row = session.execute(
        select(
            opened.scalar_subquery(),
            done.scalar_subquery(),
            select(func.count()).where(still_open).scalar_subquery(),
            select(func.count()).where(still_open, ActionItem.due_on < today).scalar_subquery(),
        )
    ).one()
    return ActionCounts(opened=int(row[0]), done=int(row[1]), open=int(row[2]), overdue=int(row[3]))


def _not_run(session: Session, experiments: Sequence[str], as_of: datetime) -> list[NotRun]:
    if not experiments:
        return []
    # One index probe per catalogue entry on (experiment_id, started_at), all in one round trip.
    last = [
        select(Run.started_at)
        .where(Run.experiment_id == experiment, Run.started_at.is_not(None), Run.started_at < as_of)
        .order_by(Run.started_at.desc())
        .limit(1)
        .scalar_subquery()
        for experiment in experiments
    ]
    row = session.execute(select(*last)).one()
    cutoff = as_of - STALE_AFTER
    return [
        NotRun(experiment, started)
        for experiment, started in zip(experiments, row, strict=True)
        if started is None or _aware(started) < cutoff
    ]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_lines(
    session: Session, in_period: ColumnElement[bool], link_for: LinkFor | None, limit: int | None
) -> list[RunLine]:
    query = (
        select(
            Run.id,
            Run.experiment_id,
            Run.environment,
            Run.owner,
            Run.state,
            Run.planned_start,
            Outcome.hypothesis_held,
            Outcome.recovery_seconds,
            Outcome.rto_seconds,
            func.coalesce(Outcome.breach, Run.end_reason),
        )
        .outerjoin(Outcome, Outcome.run_id == Run.id)
        .where(in_period)
        .order_by(Run.planned_start, Run.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        RunLine(
            run_id=row[0],
            experiment_id=row[1],
            environment=row[2],
            owner=row[3],
            state=row[4],
            planned_start=row[5],
            hypothesis_held=row[6],
            recovery_seconds=row[7],
            rto_seconds=row[8],
            reason=row[9],
            link=link_for(row[0]) if link_for else None,
        )
        for row in session.execute(query)
    ]


def _trend(session: Session, month: Period, zone: ZoneInfo) -> MonthTrend:
    start, end = month.start(zone), month.end(zone)
    in_month = and_(Run.planned_start >= start, Run.planned_start < end)

    def state_is(state: RunState) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((Run.state == state.value, 1), else_=0)), 0)

    runs = session.execute(
        select(func.count(), state_is(RunState.COMPLETED), state_is(RunState.ABORTED), state_is(RunState.FAILED)).where(
            in_month
        )
    ).one()
    refuted = session.execute(
        select(func.count())
        .select_from(Run)
        .join(Outcome, Outcome.run_id == Run.id)
        .where(in_month, Outcome.hypothesis_held.is_(False))
    ).scalar_one()
    opened = session.execute(
        select(func.count()).where(ActionItem.created_at >= start, ActionItem.created_at < end)
    ).scalar_one()
    return MonthTrend(
        period=month.label,
        runs=int(runs[0]),
        completed=int(runs[1]),
        aborted=int(runs[2]),
        failed=int(runs[3]),
        refuted=int(refuted),
        actions_opened=int(opened),
    )


def _learnings(session: Session, in_period: ColumnElement[bool]) -> list[Learning]:
    refuted_runs = (
        select(Run.id.label("run_id"), Run.experiment_id.label("experiment_id"), Outcome.breach.label("breach"))
        .join(Outcome, Outcome.run_id == Run.id)
        .where(in_period, Outcome.hypothesis_held.is_(False))
        # Materialised: grouped on its own, the planner would rather walk every run in experiment order.
        .cte("refuted_runs")
        .prefix_with("MATERIALIZED")
    )
    is_open = case((ActionItem.status == "open", 1), else_=0)
    per_experiment = session.execute(
        select(
            refuted_runs.c.experiment_id,
            func.count(func.distinct(refuted_runs.c.run_id)),
            func.max(refuted_runs.c.run_id),
            func.count(ActionItem.id),
            func.coalesce(func.sum(is_open), 0),
        )
        .outerjoin(ActionItem, ActionItem.run_id == refuted_runs.c.run_id)
        .group_by(refuted_runs.c.experiment_id)
        .order_by(func.count(func.distinct(refuted_runs.c.run_id)).desc(), refuted_runs.c.experiment_id)
    ).all()
    if not per_experiment:
        return []
    last_ids = [row[2] for row in per_experiment]
    breaches: dict[int, str | None] = {
        run_id: breach
        for run_id, breach in session.execute(
            select(Outcome.run_id, Outcome.breach).where(Outcome.run_id.in_(last_ids))
        )
    }
    rank = (
        func.row_number().over(partition_by=refuted_runs.c.experiment_id, order_by=ActionItem.id.desc()).label("rank")
    )
    ranked = (
        select(
            refuted_runs.c.experiment_id,
            ActionItem.id,
            ActionItem.run_id,
            ActionItem.what,
            ActionItem.owner,
            ActionItem.status,
            ActionItem.backlog_url,
            rank,
        )
        .join(ActionItem, ActionItem.run_id == refuted_runs.c.run_id)
        .subquery()
    )
    items: dict[str, list[LearningItem]] = {}
    for row in session.execute(select(ranked).where(ranked.c.rank <= LEARNING_ITEMS).order_by(ranked.c.id.desc())):
        items.setdefault(row[0], []).append(LearningItem(row[1], row[2], row[3], row[4], row[5], row[6]))
    return [
        Learning(
            experiment_id=experiment,
            refuted=int(count),
            last_run_id=int(last),
            last_breach=breaches.get(last),
            items_total=int(items_total),
            items_open=int(items_open),
            items=items.get(experiment, []),
        )
        for experiment, count, last, items_total, items_open in per_experiment
    ]
