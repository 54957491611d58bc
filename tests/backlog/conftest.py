from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from bot.actions.flows import ActionItems
from bot.backlog.base import Backlog
from storage.db import Database
from tests.conftest import Clock
from tests.reports.seed import SYDNEY, add_run

MakeItems = Callable[[Backlog | None], ActionItems]


@pytest.fixture
def run_id(db: Database, clock: Clock) -> int:
    with db.transaction() as session:
        return add_run(session, experiment="CE-02", state="aborted", planned=clock.now - timedelta(hours=2))


@pytest.fixture
def make_items(db: Database, clock: Clock) -> MakeItems:
    def build(backlog: Backlog | None) -> ActionItems:
        return ActionItems(
            db,
            backlog=backlog,
            zone=SYDNEY,
            clock=clock,
            name_of=lambda user: {"U0FIXER": "Grace Hopper"}.get(user, user),
            link_for=lambda run: f"https://acme.slack.com/archives/C1/p{run}",
        )

    return build


@pytest.fixture
def due(clock: Clock) -> date:
    return clock.now.astimezone(SYDNEY).date() + timedelta(days=14)
