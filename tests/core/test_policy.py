"""The approvals policy: who may approve, what each environment needs, and what edits and rejections do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.errors import IllegalTransition, InvalidInput, NotPermitted
from bot.policy.models import Policy, Role, no_groups
from bot.policy.service import PolicyError, bundled_path, load_policy, role_to_credit
from bot.runs.core import RunCore
from bot.runs.models import RunState
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.core.conftest import BuildCore
from tests.core.helpers import OWNER, PRODUCTION_APPROVERS, actions, allowed_start, approve_all, plan_run, said


def policy_from(roles: dict[str, Any], environments: dict[str, list[str]] | None = None) -> Policy:
    environments = environments or {"staging": ["reliability_partner", "security_specialist", "stakeholder"]}
    return Policy.model_validate(
        {"roles": roles, "environments": {name: {"approvals": needs} for name, needs in environments.items()}}
    )


def write_policy(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def credit(policy: Policy, approver: str, approved: dict[Role, str] | None = None, **kw: Any) -> Role:
    return role_to_credit(
        policy,
        run_label="RUN-7",
        environment=kw.get("environment", "staging"),
        owner=kw.get("owner", OWNER),
        approver=approver,
        approved=approved or {},
        held=policy.roles_of(approver, kw.get("members_of", no_groups)),
    )


# -- the bundled demo policy ----------------------------------------------------------------------


def test_demo_policy_follows_the_playbook() -> None:
    policy = load_policy()

    assert policy.required_roles("staging") == [Role.RELIABILITY_PARTNER, Role.SECURITY_SPECIALIST, Role.STAKEHOLDER]
    assert set(policy.required_roles("production")) == {*policy.required_roles("staging"), Role.EXECUTIVE}
    assert policy.roles_of("rita") == {Role.RELIABILITY_PARTNER}
    assert policy.roles_of("sid") == {Role.STAKEHOLDER}
    assert not policy.is_approver(OWNER)


# -- who may approve ------------------------------------------------------------------------------


def test_owner_cannot_approve_own_run(build_core: BuildCore) -> None:
    core = build_core()
    run = plan_run(core, owner="rita")

    with pytest.raises(NotPermitted, match="You own RUN-1, so you cannot approve it"):
        core.transitions.approve("rita", run.id)

    assert core.queries.run(run.id).approvals == []


def test_same_person_approving_twice_counts_once(core: RunCore) -> None:
    run = plan_run(core)
    core.transitions.approve("rita", run.id)

    with pytest.raises(NotPermitted) as caught:
        core.transitions.approve("rita", run.id)

    assert "already approved" in caught.value.message and "reliability partner" in caught.value.message
    assert [(a.role, a.user_id) for a in core.queries.run(run.id).approvals] == [("reliability_partner", "rita")]


def test_person_holding_two_roles_counts_for_one_only(build_core: BuildCore) -> None:
    policy = policy_from(
        {
            "reliability_partner": {"users": ["rita"]},
            "security_specialist": {"users": ["rita", "sam"]},
            "stakeholder": {"users": ["stella"]},
        }
    )
    core = build_core(policy=policy)
    run = plan_run(core)

    assert core.transitions.approve("rita", run.id).role is Role.RELIABILITY_PARTNER
    with pytest.raises(NotPermitted, match="one person's approval counts for one role"):
        core.transitions.approve("rita", run.id)
    core.transitions.approve("stella", run.id)

    assert core.queries.run(run.id).run_state is RunState.PLANNED
    assert core.queries.missing_roles(core.queries.run(run.id)) == [Role.SECURITY_SPECIALIST]


def test_two_role_holder_is_credited_with_the_role_still_missing() -> None:
    policy = policy_from(
        {
            "reliability_partner": {"users": ["rita", "ray"]},
            "security_specialist": {"users": ["sam"]},
            "stakeholder": {"users": ["rita", "stella"]},
        }
    )

    assert credit(policy, "rita", {Role.RELIABILITY_PARTNER: "ray"}) is Role.STAKEHOLDER


def test_wrong_role_is_refused_naming_missing_roles_and_their_holders(core: RunCore) -> None:
    run = plan_run(core)
    core.transitions.approve("rita", run.id)

    with pytest.raises(NotPermitted) as caught:
        core.transitions.approve("mallory", run.id)

    message = said(caught.value)
    assert "none of the roles" in message
    assert "security specialist (<@sam>)" in message
    assert "stakeholder (<@stella>, <@sid>)" in message
    assert "reliability partner" not in message  # already given, so not missing


def test_second_holder_of_an_approved_role_is_told_who_gave_it(core: RunCore) -> None:
    run = plan_run(core)
    core.transitions.approve("stella", run.id)

    with pytest.raises(NotPermitted) as caught:
        core.transitions.approve("sid", run.id)

    assert "stakeholder by <@stella>" in said(caught.value)
    assert "security specialist (<@sam>)" in said(caught.value)


def test_executive_on_staging_is_not_told_their_role_is_already_approved() -> None:
    with pytest.raises(NotPermitted) as caught:
        credit(load_policy(), "eve")

    assert "already approved" not in caught.value.message
    assert "()" not in caught.value.message
    assert "executive" in caught.value.message
    assert "security specialist (<@sam>)" in said(caught.value)


def test_stakeholder_group_member_approves_through_members_of(build_core: BuildCore) -> None:
    policy = policy_from(
        {
            "reliability_partner": {"users": ["rita"]},
            "security_specialist": {"users": ["sam"]},
            "stakeholder": {"groups": ["S0PORTAL"]},
        }
    )
    groups = {"S0PORTAL": frozenset({"gina", "gus"})}
    core = build_core(policy=policy, members_of=lambda group: groups.get(group, frozenset()))
    run = plan_run(core)

    assert core.transitions.approve("gina", run.id).role is Role.STAKEHOLDER
    with pytest.raises(NotPermitted) as caught:
        core.transitions.approve("gus", run.id)
    assert "stakeholder by <@gina>" in said(caught.value)


def test_group_is_mentioned_when_nobody_in_it_has_approved() -> None:
    policy = policy_from(
        {
            "reliability_partner": {"users": ["rita"]},
            "security_specialist": {"users": ["sam"]},
            "stakeholder": {"groups": ["S0PORTAL"]},
        }
    )

    with pytest.raises(NotPermitted) as caught:
        credit(policy, "outsider", members_of=lambda _group: frozenset({"gina"}))
    assert "stakeholder (<!subteam^S0PORTAL>)" in said(caught.value)


def test_without_a_group_resolver_group_members_are_not_approvers() -> None:
    policy = policy_from(
        {
            "reliability_partner": {"users": ["rita"]},
            "security_specialist": {"users": ["sam"]},
            "stakeholder": {"groups": ["S0PORTAL"]},
        }
    )

    with pytest.raises(NotPermitted):
        credit(policy, "gina")


def test_production_stays_planned_until_the_executive_approves(core: RunCore) -> None:
    run = plan_run(core, experiment="CE-05", environment="production")
    approve_all(core, run.id, ("rita", "sam", "stella"))

    assert core.queries.run(run.id).run_state is RunState.PLANNED
    assert core.queries.missing_roles(core.queries.run(run.id)) == [Role.EXECUTIVE]

    approved = core.transitions.approve("eve", run.id)

    assert approved.complete and approved.role is Role.EXECUTIVE
    assert core.queries.run(run.id).run_state is RunState.APPROVED


def test_staging_needs_no_executive(core: RunCore) -> None:
    run = plan_run(core, experiment="CE-05", environment="staging")

    results = [core.transitions.approve(user, run.id) for user in ("rita", "sam", "sid")]

    assert [r.complete for r in results] == [False, False, True]
    with pytest.raises(IllegalTransition, match="already approved"):
        core.transitions.approve("eve", run.id)


# -- loading policy files ---------------------------------------------------------------------------


def test_environment_needing_a_role_nobody_holds_fails_to_load(tmp_path: Path) -> None:
    raw = yaml.safe_load(bundled_path().read_text(encoding="utf-8"))
    del raw["roles"]["executive"]
    path = write_policy(tmp_path / "policy.yml", raw)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(path) in str(caught.value)
    assert caught.value.problems == ["(top): environment production needs executive but nobody holds that role"]


def test_role_with_empty_holder_lists_counts_as_nobody(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path / "policy.yml",
        {
            "roles": {"reliability_partner": {"users": ["rita"]}, "security_specialist": {"users": [], "groups": []}},
            "environments": {"staging": {"approvals": ["reliability_partner", "security_specialist"]}},
        },
    )

    with pytest.raises(PolicyError, match="staging needs security_specialist but nobody holds that role"):
        load_policy(path)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"roles": {"ceo": {"users": ["x"]}}, "environments": {"staging": {"approvals": ["ceo"]}}}, "roles.ceo"),
        ({"roles": {"executive": {"users": ["eve"]}}, "environments": {}}, "environments"),
        (
            {"roles": {"executive": {"users": ["eve"]}}, "environments": {"p": {"approvals": ["executive"] * 2}}},
            "listed twice",
        ),
        (
            {
                "roles": {"executive": {"users": ["eve"]}},
                "environments": {"p": {"approvals": ["executive"]}},
                "plan_expiry": "1 day",
            },
            "plan_expiry",
        ),
    ],
)
def test_bad_policy_file_names_the_problem(tmp_path: Path, raw: dict[str, Any], problem: str) -> None:
    path = write_policy(tmp_path / "policy.yml", raw)

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert problem in str(caught.value) and str(path) in str(caught.value)


def test_missing_policy_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "nope.yml")


# -- rejecting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_reject_needs_a_reason(core: RunCore, reason: str) -> None:
    run = plan_run(core)

    with pytest.raises(InvalidInput) as caught:
        core.transitions.reject("rita", run.id, reason)

    assert caught.value.field == "reason"
    assert core.queries.run(run.id).run_state is RunState.PLANNED


def test_only_approvers_may_reject(core: RunCore) -> None:
    run = plan_run(core)

    with pytest.raises(NotPermitted, match="Only approvers can reject RUN-1"):
        core.transitions.reject("mallory", run.id, "I do not like it")

    assert core.queries.run(run.id).run_state is RunState.PLANNED


def test_owner_who_is_an_approver_is_told_to_cancel_instead(core: RunCore) -> None:
    run = plan_run(core, owner="rita")

    with pytest.raises(NotPermitted, match="cancel it instead"):
        core.transitions.reject("rita", run.id, "withdrawn")


def test_rejection_records_who_and_why(core: RunCore) -> None:
    run = plan_run(core)

    rejected = core.transitions.reject("sam", run.id, "  clashes with the release freeze  ")

    assert rejected.run_state is RunState.REJECTED
    assert (rejected.ended_by, rejected.end_reason) == ("sam", "clashes with the release freeze")


# -- editing resets approvals ---------------------------------------------------------------------------


def test_editing_a_plan_resets_its_approvals(core: RunCore, db: Database) -> None:
    run = plan_run(core)
    core.transitions.approve("rita", run.id)
    core.transitions.approve("sam", run.id)

    edited = core.transitions.edit(
        OWNER, run.id, PlanRequest(experiment_id="CE-01", rollback_steps="1. Unpause Redis.")
    )

    assert edited.approvals == []
    assert edited.rollback_steps == "1. Unpause Redis."
    assert core.queries.missing_roles(edited) == [Role.RELIABILITY_PARTNER, Role.SECURITY_SPECIALIST, Role.STAKEHOLDER]
    assert actions(db, run.id)[-1] == "run.edited"


def test_editing_an_approved_run_sends_it_back_to_planned(core: RunCore) -> None:
    run = plan_run(core, experiment="CE-05", environment="staging", start=allowed_start(core, "production"))
    approve_all(core, run.id)

    edited = core.transitions.edit(OWNER, run.id, PlanRequest(experiment_id="CE-05", environment="production"))

    assert edited.run_state is RunState.PLANNED and edited.approved_at is None
    assert edited.environment == "production"
    with pytest.raises(IllegalTransition, match="still needs approval"):
        core.transitions.begin(OWNER, run.id)
    approve_all(core, run.id, PRODUCTION_APPROVERS)
    assert core.queries.run(run.id).run_state is RunState.APPROVED


def test_only_the_owner_or_an_approver_may_edit(core: RunCore) -> None:
    run = plan_run(core)
    core.transitions.approve("rita", run.id)

    with pytest.raises(NotPermitted) as caught:
        core.transitions.edit("bob", run.id, PlanRequest(experiment_id="CE-01", notes="sneaky"))
    assert said(caught.value).startswith("Only the owner (<@oliver>) or an approver can edit")
    assert len(core.queries.run(run.id).approvals) == 1

    edited = core.transitions.edit("sam", run.id, PlanRequest(experiment_id="CE-01", notes="moved to the quiet hour"))
    assert edited.notes == "moved to the quiet hour" and edited.approvals == []
