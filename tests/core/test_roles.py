"""Roles are resolved before any transaction, from a snapshot of the policy's user groups."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.errors import RolesUnavailable
from bot.policy.directory import RoleDirectory
from bot.policy.models import Policy, Role
from bot.runs.core import RunCore
from bot.runs.models import RunState
from storage.db import Database
from tests.core.conftest import BuildCore
from tests.core.helpers import OWNER, actions, plan_run

POLICY: dict[str, Any] = {
    "roles": {
        "reliability_partner": {"users": ["rita"]},
        "security_specialist": {"users": ["sam"]},
        "stakeholder": {"groups": ["S0PORTAL"]},
    },
    "environments": {"staging": {"approvals": ["reliability_partner", "security_specialist", "stakeholder"]}},
}


class Groups:
    """User-group members as the chat platform would answer, counting the questions; may be made to fail."""

    def __init__(self, **members: set[str]) -> None:
        self.members = {group: frozenset(users) for group, users in members.items()}
        self.asked = 0
        self.down = False
        self.asked_event = threading.Event()

    def __call__(self, group: str) -> frozenset[str]:
        self.asked += 1
        self.asked_event.set()
        if self.down:
            raise ConnectionError("Slack did not answer")
        return self.members.get(group, frozenset())


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def policy() -> Policy:
    return Policy.model_validate(POLICY)


def with_roles(build: BuildCore, policy: Policy, directory: RoleDirectory) -> RunCore:
    return build(policy=policy, roles=directory)


def test_group_members_are_read_while_no_transaction_is_open(
    build_core: BuildCore, policy: Policy, db: Database
) -> None:
    core: RunCore | None = None
    got_through: list[bool] = []

    def members_of(group: str) -> frozenset[str]:
        # Another writer must get through while we "wait for Slack": on SQLite, a transaction held by
        # the approval would keep it out (one write lock for the whole database).
        assert core is not None
        writer = threading.Thread(target=core.audit.record, args=("probe", "probe"))
        writer.start()
        writer.join(timeout=3)
        got_through.append(not writer.is_alive())
        return frozenset({"gina"})

    core = with_roles(build_core, policy, RoleDirectory(policy, members_of))
    run = plan_run(core)

    assert core.transitions.approve("gina", run.id).role is Role.STAKEHOLDER
    assert got_through == [True]


def test_a_snapshot_is_used_until_it_is_stale_then_read_again(policy: Policy) -> None:
    groups, ticks = Groups(S0PORTAL={"gina"}), Ticks()
    directory = RoleDirectory(policy, groups, ttl=60, monotonic=ticks)

    assert directory.roles_of("gina") == {Role.STAKEHOLDER}
    groups.members["S0PORTAL"] = frozenset({"gus"})
    ticks.now += 59
    assert directory.roles_of("gina") == {Role.STAKEHOLDER}  # still the snapshot
    assert groups.asked == 1
    ticks.now += 2
    assert directory.roles_of("gina") == frozenset()  # left the group: read again once stale
    assert directory.roles_of("gus") == {Role.STAKEHOLDER}
    assert groups.asked == 2


def test_when_slack_fails_a_recent_snapshot_still_serves(policy: Policy) -> None:
    groups, ticks = Groups(S0PORTAL={"gina"}), Ticks()
    directory = RoleDirectory(policy, groups, ttl=60, grace=600, monotonic=ticks)
    assert directory.roles_of("gina") == {Role.STAKEHOLDER}

    groups.down = True
    ticks.now += 300
    assert directory.roles_of("gina") == {Role.STAKEHOLDER}
    ticks.now += 301
    with pytest.raises(RolesUnavailable, match="Try again"):
        directory.roles_of("gina")


def test_approval_is_refused_clearly_and_nothing_changes_when_roles_cannot_be_read(
    build_core: BuildCore, policy: Policy, db: Database
) -> None:
    groups = Groups(S0PORTAL={"gina"})
    groups.down = True
    core = with_roles(build_core, policy, RoleDirectory(policy, groups))
    run = plan_run(core)
    before = actions(db, run.id)

    with pytest.raises(RolesUnavailable) as caught:
        core.transitions.approve("gina", run.id)

    assert "could not check who holds the approver roles" in caught.value.message
    assert core.queries.run(run.id).approvals == []
    assert actions(db, run.id) == before


def test_the_owner_cancels_without_any_role_lookup_succeeding(build_core: BuildCore, policy: Policy) -> None:
    groups = Groups()
    groups.down = True
    core = with_roles(build_core, policy, RoleDirectory(policy, groups))
    run = plan_run(core)

    assert core.transitions.cancel(OWNER, run.id, "not today").run_state is RunState.CANCELLED
    with pytest.raises(RolesUnavailable):
        core.transitions.cancel("mallory", plan_run(core).id)  # a stranger's right to cancel needs the roles


def test_the_background_refresh_reads_the_groups_and_stops_on_close(policy: Policy) -> None:
    groups = Groups(S0PORTAL={"gina"})
    directory = RoleDirectory(policy, groups, ttl=60)

    directory.start()
    assert groups.asked_event.wait(timeout=5)
    directory.close()

    assert not any(t.name == "chaosbot-roles" for t in threading.enumerate())
    asked = groups.asked
    assert directory.roles_of("gina") == {Role.STAKEHOLDER}
    assert groups.asked == asked  # served from the snapshot the refresh took


def test_a_policy_without_groups_never_asks_anyone() -> None:
    policy = Policy.model_validate({**POLICY, "roles": {**POLICY["roles"], "stakeholder": {"users": ["stella"]}}})
    groups = Groups()
    directory = RoleDirectory(policy, groups)
    directory.start()
    directory.close()

    assert directory.roles_of("stella") == {Role.STAKEHOLDER}
    assert groups.asked == 0
