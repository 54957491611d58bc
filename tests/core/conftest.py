"""Fixtures for the runs-core tests, on top of tests/conftest.py (db, pg_db, clock, core)."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue.models import Catalogue
from bot.catalogue.service import load_catalogue
from bot.policy.directory import RoleDirectory
from bot.policy.models import GroupMembers, Policy, no_groups
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from storage.db import Database
from tests.conftest import Clock

SYDNEY = ZoneInfo("Australia/Sydney")

BuildCore = Callable[..., RunCore]


@pytest.fixture(scope="session")
def bundled_catalogue() -> Catalogue:
    """Loaded once: both models are frozen, so sharing them between tests is safe."""
    return load_catalogue()


@pytest.fixture(scope="session")
def demo_policy() -> Policy:
    return load_policy()


@pytest.fixture
def make_core(clock: Clock, bundled_catalogue: Catalogue, demo_policy: Policy) -> Callable[[Database], RunCore]:
    """Same as tests/conftest.py's, without re-reading the bundled files for every test."""

    def build(database: Database) -> RunCore:
        return RunCore.build(database, bundled_catalogue, demo_policy, zone=SYDNEY, clock=clock)

    return build


@pytest.fixture
def build_core(db: Database, clock: Clock, bundled_catalogue: Catalogue, demo_policy: Policy) -> BuildCore:
    """A RunCore on ``db`` with the hand-moved clock and any policy, catalogue or group resolver."""

    def build(
        *,
        policy: Policy | None = None,
        catalogue: Catalogue | None = None,
        members_of: GroupMembers = no_groups,
        roles: RoleDirectory | None = None,
    ) -> RunCore:
        return RunCore.build(
            db,
            catalogue or bundled_catalogue,
            policy or demo_policy,
            zone=SYDNEY,
            members_of=members_of,
            roles=roles,
            clock=clock,
        )

    return build
