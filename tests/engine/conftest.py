"""Fixtures for engine tests: the lab, a core over a small test catalogue, engines that are closed after."""

from __future__ import annotations

import itertools
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.models import Catalogue, Experiment
from bot.engine import Coordination, DatabaseCoordination, RunEngine
from bot.policy.models import Policy
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.models import Run
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.engine.lab import Lab, make_experiment
from tests.engine.recording import RecordingNotifier

OWNER = "owen"
APPROVERS = ("rita", "sam", "stella")


_ENGINE_NAMES = itertools.count(1)


@dataclass
class World:
    db: Database
    lab: Lab
    core: RunCore
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    engines: list[RunEngine] = field(default_factory=list)
    spool_dir: Path | None = None

    def engine(self, coordination: Coordination | None = None, **options: Any) -> RunEngine:
        options.setdefault("holder", f"engine-{next(_ENGINE_NAMES)}")  # each engine here stands for a replica
        options.setdefault("revert_attempts", 2)
        options.setdefault("lease_ttl", timedelta(seconds=3))
        options.setdefault("spool_dir", self.spool_dir)
        engine = RunEngine(self.core, self.notifier, coordination or DatabaseCoordination(self.db), **options)
        self.engines.append(engine)
        return engine

    def approved(self, experiment_id: str = "CE-90") -> int:
        run = self.core.transitions.plan(OWNER, PlanRequest(experiment_id=experiment_id))
        for approver in APPROVERS:
            self.core.transitions.approve(approver, run.id)
        return run.id

    def approved_in(self, environment: str, experiment_id: str = "CE-90") -> int:
        run = self.core.transitions.plan(OWNER, PlanRequest(experiment_id=experiment_id, environment=environment))
        for approver in (*APPROVERS, *(("eve",) if environment == "production" else ())):
            self.core.transitions.approve(approver, run.id)
        return run.id

    def run(self, run_id: int) -> Run:
        return self.core.queries.run(run_id)

    def events(self, run_id: int) -> str:
        return "\n".join(str(text) for rid, text in list(self.notifier.events) if rid == run_id)


@pytest.fixture
def lab() -> Iterator[Lab]:
    server = Lab()
    yield server
    server.close()


def core_for(db: Database, *experiments: Experiment, policy: Policy | None = None) -> RunCore:
    catalogue = Catalogue(experiments=list(experiments))
    return RunCore.build(db, catalogue, policy or any_hour_policy(), zone=ZoneInfo("UTC"))


def any_hour_policy() -> Policy:
    """The bundled policy with production's off-peak windows lifted: these tests start runs at any hour."""
    policy = load_policy()
    environments = {name: rules.model_copy(update={"windows": []}) for name, rules in policy.environments.items()}
    return policy.model_copy(update={"environments": environments})


@pytest.fixture
def make_world(lab: Lab, tmp_path: Path) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def build(db: Database, *experiments: Experiment, policy: Policy | None = None) -> World:
        world = World(db, lab, core_for(db, *(experiments or (make_experiment(lab),)), policy=policy))
        world.spool_dir = tmp_path / f"spool-{len(worlds)}"
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        for engine in world.engines:
            engine.close()


@pytest.fixture
def world(db: Database, make_world: Callable[..., World]) -> World:
    """The default lab experiment CE-90 on SQLite and PostgreSQL."""
    return make_world(db)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (Redis "down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """SQLite only, for tests whose point does not depend on the database."""
    path = tmp_path / "engine.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()
