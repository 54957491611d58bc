"""Posting a run's retrospective: the blocks in the run's thread, the chart uploaded under them, a line in the
channel linking to it, and ``retrospective.posted`` in the audit chain.

``post_retrospective`` takes its pieces (builder, renderers, poster) so Slack and the console can both use
it, and so the integration can wrap it in the exactly-once claim (kind ``retrospective``, key = run id).
No transaction is open during a network call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from bot.audit import service as audit
from bot.records import service as records
from bot.retro.models import Retrospective, RetrospectivePost
from bot.schedule import firings
from bot.words import SYSTEM_ACTOR
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

RETROSPECTIVE = "retrospective"  # the claim's kind; its key is the run id
CLAIM_LEASE = timedelta(minutes=2)  # longer than building, drawing and three Slack calls with their retries

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)


class RetroPoster(Protocol[M_contra]):
    """What posting needs from a chat surface (``bot.slack.files.SlackRetroOutlet`` for Slack)."""

    def post(self, channel: str, message: M_contra, *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post and return (channel id, message ts); raises when the message could not be posted."""

    def update(self, channel: str, ts: str, message: M_contra) -> None: ...

    def upload(
        self, channel: str, thread_ts: str | None, content: bytes, *, filename: str, title: str, alt_text: str
    ) -> bool:
        """Upload a file into the thread; False (logged) when it failed."""

    def permalink(self, channel: str, ts: str) -> str | None: ...


@dataclass(frozen=True)
class RetroRenderers(Generic[M]):
    """How a retrospective becomes messages (``bot.interface.learning.messages``) and a chart (``bot.retro.chart``)."""

    message: Callable[[Retrospective, bool], M]  # the bool: the chart could not be attached
    summary: Callable[[Retrospective, str | None], M]  # the channel line, with the retrospective's link
    chart: Callable[[Retrospective], bytes] | None
    alt_text: Callable[[Retrospective], str] = lambda retro: f"Chart of {retro.label}"


@dataclass(frozen=True)
class Destination:
    """The run's message: the retrospective goes in its thread; the summary line in ``summary_channel``."""

    channel: str
    thread_ts: str | None
    summary_channel: str | None = None


@dataclass(frozen=True)
class Posted:
    run_id: int
    channel: str
    ts: str
    chart_attached: bool
    already: bool = False


def post_retrospective(
    db: Database,
    run_id: int,
    *,
    build: Callable[[], Retrospective],
    renderers: RetroRenderers[M],
    poster: RetroPoster[M],
    destination: Destination,
    clock: Callable[[], datetime] = utcnow,
) -> Posted:
    """Post the retrospective once; a run whose retrospective is already recorded is not posted again.

    The text is posted first so it stands whatever happens to the chart; when the chart cannot be drawn
    or uploaded, the text is updated to say so. Raises when the retrospective itself cannot be posted
    (the caller's claim then lets another attempt happen).
    """
    existing = _recorded(db, run_id)
    if existing is not None:
        return existing
    retro = build()
    channel, ts = poster.post(destination.channel, renderers.message(retro, False), thread_ts=destination.thread_ts)
    attached = _attach_chart(retro, renderers, poster, channel, destination.thread_ts or ts)
    if not attached:
        _quietly(lambda: poster.update(channel, ts, renderers.message(retro, True)), "saying the chart is missing")
    if destination.summary_channel and destination.thread_ts:
        summary_channel = destination.summary_channel

        def summarise() -> None:
            poster.post(summary_channel, renderers.summary(retro, poster.permalink(channel, ts)))

        _quietly(summarise, f"posting the summary line of {retro.label}")
    _record(db, retro, channel=channel, ts=ts, attached=attached, at=clock())
    return Posted(run_id, channel, ts, attached)


def post_once(db: Database, run_id: int, *, holder: str, now: datetime, post: Callable[[], Posted]) -> Posted | None:
    """``post`` (a ``post_retrospective`` call) under the exactly-once claim (kind ``retrospective``, key the run
    id): None when another replica holds or finished it. A failure is given back for a retry after a back-off."""
    posted_now: list[Posted] = []
    won = firings.once(
        db,
        kind=RETROSPECTIVE,
        key=str(run_id),
        due_at=now,
        holder=holder,
        lease=CLAIM_LEASE,
        now=now,
        action=lambda: posted_now.append(post()),
        run_id=run_id,
    )
    return posted_now[0] if won else None


def _attach_chart(
    retro: Retrospective, renderers: RetroRenderers[M], poster: RetroPoster[M], channel: str, thread_ts: str
) -> bool:
    if renderers.chart is None:
        return False
    try:
        png = renderers.chart(retro)
    except Exception:  # a drawing bug must not cost the retrospective its text
        log.exception("could not draw the chart of %s", retro.label)
        return False
    return poster.upload(
        channel,
        thread_ts,
        png,
        filename=f"{retro.label}-retrospective.png",
        title=f"{retro.label} {retro.experiment_id}: stop conditions over time",
        alt_text=renderers.alt_text(retro),
    )


def _quietly(call: Callable[[], None], what: str) -> None:
    try:
        call()
    except Exception:  # the retrospective is posted; an extra that fails is logged, not retried
        log.exception("failed %s", what)


def _recorded(db: Database, run_id: int) -> Posted | None:
    with db.transaction() as session:
        row = session.get(RetrospectivePost, run_id)
        if row is None:
            return None
        return Posted(run_id, row.channel_id, row.message_ts, row.chart_attached, already=True)


def _record(db: Database, retro: Retrospective, *, channel: str, ts: str, attached: bool, at: datetime) -> None:
    with db.transaction() as session:
        session.add(
            RetrospectivePost(
                run_id=retro.run_id, channel_id=channel, message_ts=ts, chart_attached=attached, posted_at=at
            )
        )
        audit.append(
            session,
            actor=SYSTEM_ACTOR,
            action="retrospective.posted",
            run_id=retro.run_id,
            payload={"channel": channel, "ts": ts, "chart": attached, "verdict": retro.verdict.value},
        )


def awaits_recovery(db: Database, run_id: int, now: datetime) -> bool:
    """Whether the run's recovery after a stop condition's abort is still being measured: its retrospective
    waits for it (it is posted when the recovery is recorded, or by a sweep once the watch has lapsed)."""
    with db.transaction() as session:
        outcome = records.outcome(session, run_id=run_id)
        return outcome is not None and outcome.awaits_recovery(now)


def posted(db: Database, run_id: int) -> Posted | None:
    """Where the run's retrospective was posted, if it was (for the summaries' links to each thread)."""
    return _recorded(db, run_id)
