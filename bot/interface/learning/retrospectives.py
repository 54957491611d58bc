"""Posting each ended run's retrospective in its thread, once across replicas, within seconds of the end.

The engine says a run ended (``ended``, called after its end is recorded, from whichever replica recorded
it); the post happens on this object's own thread so an abort never waits for a chart. ``sweep`` (a periodic
job) catches up the runs whose retrospective was not posted: a replica that died before posting, Slack down.
Every attempt goes through ``bot.retro.flows.post_once``: one claim per run across replicas.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.actions.retrospective import action_item_lines
from bot.interface.kit import Message, notice
from bot.interface.learning.messages import retro_renderers
from bot.interface.render import Renderer
from bot.interface.service import RunMessages
from bot.interface.surface import Surface
from bot.records import service as records
from bot.records.models import Outcome
from bot.retro import service as retro
from bot.retro.flows import Destination, Posted, RetroPoster, awaits_recovery, post_once, post_retrospective
from bot.retro.models import RetrospectivePost
from bot.runs.models import RAN, Run
from storage.db import Database, utcnow

log = logging.getLogger(__name__)

# How far back the sweep looks: a fresh install must not post a year of retrospectives at once.
SWEEP_HORIZON = timedelta(days=2)
SWEEP_BATCH = 20
KEPT_LINKS = 512

Outlet = RetroPoster[Message]


class ThreadLinks:
    """Permalinks of run threads (for backlog issues and summaries), asked of the chat once and kept.

    ``cached`` never calls out, so it is safe inside a transaction; ``get`` may call the chat platform.
    """

    def __init__(self, messages: RunMessages, outlet: Outlet) -> None:
        self.messages = messages
        self.outlet = outlet
        self._kept: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, run_id: int) -> str | None:
        with self._lock:
            return self._kept.get(run_id)

    def get(self, run_id: int) -> str | None:
        known = self.cached(run_id)
        if known is not None:
            return known
        where = self.messages.find(run_id)
        link = self.outlet.permalink(where.channel_id, where.message_ts) if where is not None else None
        if link is not None:
            with self._lock:
                self._kept[run_id] = link
                while len(self._kept) > KEPT_LINKS:
                    self._kept.popitem(last=False)
        return link


class Retrospectives:
    """Posts retrospectives (see the module docstring); ``close()`` lets a post under way finish."""

    def __init__(
        self,
        db: Database,
        *,
        outlet: Outlet,
        render: Renderer,
        zone: ZoneInfo,
        channel: str,
        holder: str,
        clock: Callable[[], datetime] = utcnow,
        with_chart: bool = True,
    ) -> None:
        self.db = db
        self.outlet = outlet
        self.renderers = retro_renderers(render, with_chart=with_chart)
        self.zone = zone
        self.channel = channel
        self.holder = holder
        self.clock = clock
        self.messages = RunMessages(db)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chaosbot-retro")

    def ended(self, run_id: int) -> None:
        """A run's end was recorded: post its retrospective soon (returns at once, never raises)."""
        try:
            self._worker.submit(self._quietly, run_id)
        except RuntimeError:  # closed: the next replica's sweep posts it
            log.info("not posting the retrospective of run %s now: shutting down", run_id)

    def post(self, run_id: int) -> Posted | None:
        """Post the run's retrospective unless another replica has it (or posted it) or its recovery is still
        being measured (None then); raises when it failed."""
        if awaits_recovery(self.db, run_id, self.clock()):
            return None
        where = self.messages.find(run_id)
        destination = (
            Destination(where.channel_id, where.message_ts, summary_channel=self.channel)
            if where is not None
            else Destination(self.channel, None)
        )
        return post_once(
            self.db,
            run_id,
            holder=self.holder,
            now=self.clock(),
            post=lambda: post_retrospective(
                self.db,
                run_id,
                build=lambda: retro.build(
                    self.db, run_id, zone=self.zone, action_items=action_item_lines, now=self.clock()
                ),
                renderers=self.renderers,
                poster=self.outlet,
                destination=destination,
                clock=self.clock,
            ),
        )

    def unposted(self, *, limit: int = SWEEP_BATCH) -> list[int]:
        """Runs that ended recently and have no retrospective yet, oldest first (not those whose recovery
        after an abort is still being measured)."""
        now = self.clock()
        since = now - SWEEP_HORIZON
        with self.db.transaction() as session:
            query = (
                select(Run.id)
                .outerjoin(RetrospectivePost, RetrospectivePost.run_id == Run.id)
                .outerjoin(Outcome, Outcome.run_id == Run.id)
                .where(Run.state.in_(RAN), Run.ended_at >= since, RetrospectivePost.run_id.is_(None))
                .where(records.recovery_settled(now))
                .order_by(Run.ended_at)
                .limit(limit)
            )
            return list(session.scalars(query))

    def sweep(self) -> list[int]:
        """Post what is missing (a periodic job, on every replica); returns the runs posted by this one."""
        posted = []
        for run_id in self.unposted():
            try:
                if self.post(run_id) is not None:
                    posted.append(run_id)
            except Exception:
                log.exception("could not post the retrospective of run %s; it is tried again later", run_id)
        return posted

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    def _quietly(self, run_id: int) -> None:
        try:
            self.post(run_id)
        except Exception:  # the claim is given back with a back-off; the sweep tries again
            log.exception("could not post the retrospective of run %s; the sweep tries again", run_id)


class SurfaceRetroOutlet:
    """A ``RetroPoster`` over any ``Surface`` without file uploads (the console): the chart is written to
    ``chart_dir`` and its path posted in the thread; without a directory there is no chart."""

    def __init__(self, surface: Surface, chart_dir: Path | None = None) -> None:
        self.surface = surface
        self.chart_dir = chart_dir

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        return self.surface.post(channel, message, thread_ts=thread_ts)

    def update(self, channel: str, ts: str, message: Message) -> None:
        self.surface.update(channel, ts, message)

    def upload(
        self, channel: str, thread_ts: str | None, content: bytes, *, filename: str, title: str, alt_text: str
    ) -> bool:
        if self.chart_dir is None:
            return False
        try:
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            path = self.chart_dir / filename
            path.write_bytes(content)
        except OSError:
            return False
        self.surface.post(channel, notice(f":bar_chart: {title}: {path}"), thread_ts=thread_ts)
        return True

    def permalink(self, channel: str, ts: str) -> str | None:
        return None
