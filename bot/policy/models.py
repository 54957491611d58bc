"""Who may approve what: roles held by Slack users or user groups, and the roles each environment needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from bot.backlog.models import BacklogConfig
from bot.freezes.config import FreezeCalendar
from bot.reports.config import Reporting
from bot.schedule.windows import Window
from bot.vocabulary import parse_duration
from bot.words import Group, Part, Person

GroupMembers = Callable[[str], frozenset[str]]


def no_groups(_group_id: str) -> frozenset[str]:
    return frozenset()


class Role(StrEnum):
    RELIABILITY_PARTNER = "reliability_partner"
    SECURITY_SPECIALIST = "security_specialist"
    STAKEHOLDER = "stakeholder"
    EXECUTIVE = "executive"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class AbortRule(StrEnum):
    """Who may abort one run or pull the kill switch (``resume`` always needs an approver)."""

    ANYONE = "anyone"  # anyone in the channel: a kill switch is for whoever sees the harm first
    APPROVERS = "approvers"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleHolders(_Strict):
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    def who(self) -> list[Part]:
        """The holders as people and groups (each interface renders them its own way)."""
        people: list[Part] = [Person(user) for user in self.users]
        return people + [Group(group) for group in self.groups]


class EnvironmentRules(_Strict):
    approvals: list[Role] = Field(min_length=1)
    # When runs may start (team time zone); none: any time.
    windows: list[Window] = Field(default_factory=list)

    @field_validator("approvals")
    @classmethod
    def _no_repeats(cls, value: list[Role]) -> list[Role]:
        if len(value) != len(set(value)):
            raise ValueError("a role is listed twice")
        return value


class AlertmanagerConfig(_Strict):
    """The team's Alertmanager; ``${VAR}`` resolved at each call, ``ALERTMANAGER_TOKEN`` sent when set."""

    url: str = Field(min_length=1, description="e.g. ${ALERTMANAGER_URL} or http://alertmanager:9093")


class Policy(_Strict):
    roles: dict[Role, RoleHolders]
    environments: dict[str, EnvironmentRules] = Field(min_length=1)
    plan_expiry: timedelta = Field(default=timedelta(hours=24), description="after the planned start")
    start_early: timedelta = Field(default=timedelta(minutes=30), description="before the planned start")
    backlog: BacklogConfig | None = Field(default=None, description="where action items are filed (optional)")
    reporting: Reporting = Field(default_factory=Reporting, description="when and where summaries are posted")
    notice: timedelta = Field(default=timedelta(minutes=15), description="announcement before the planned start")
    freeze_calendars: list[FreezeCalendar] = Field(default_factory=list)
    abort: AbortRule = Field(default=AbortRule.ANYONE, description="who may abort: anyone | approvers")
    alertmanager: AlertmanagerConfig | None = Field(default=None, description="where run silences are created")

    @field_validator("plan_expiry", "start_early", "notice", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_serializer("plan_expiry", "start_early", "notice")
    def _seconds(self, value: timedelta) -> int:
        return int(value.total_seconds())

    @model_validator(mode="after")
    def _roles_have_holders(self) -> Policy:
        for name, rules in self.environments.items():
            for role in rules.approvals:
                holders = self.roles.get(role)
                if holders is None or not (holders.users or holders.groups):
                    raise ValueError(f"environment {name} needs {role.value} but nobody holds that role")
        return self

    def required_roles(self, environment: str) -> list[Role]:
        return list(self.environments[environment].approvals)

    def roles_of(self, user_id: str, members_of: GroupMembers = no_groups) -> set[Role]:
        held = set()
        for role, holders in self.roles.items():
            if user_id in holders.users or any(user_id in members_of(group) for group in holders.groups):
                held.add(role)
        return held

    def is_approver(self, user_id: str, members_of: GroupMembers = no_groups) -> bool:
        return bool(self.roles_of(user_id, members_of))

    def groups(self) -> frozenset[str]:
        """Every user group that holds a role: what a role directory keeps a snapshot of."""
        return frozenset(group for holders in self.roles.values() for group in holders.groups)

    def holders(self, role: Role) -> RoleHolders:
        return self.roles.get(role, RoleHolders())
