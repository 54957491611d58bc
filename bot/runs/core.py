"""The runs core, wired once: the four fronts Slack, the console, the CLI, the scheduler and the engine call.

- ``queries``: read runs (one run, the running ones, status, a person's Home, what a run still needs);
- ``rules``: validate plans, edits, reasons and durations (no database);
- ``transitions``: change a run's state (plan, edit, approve, reject, cancel, start, finish, expire);
- ``kill_switch``: engage, release and read the global kill switch, and who may abort.

``audit`` records what is not a state change. ``RunCore`` only holds them: it has no behaviour of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.audit.service import AuditTrail
from bot.catalogue.models import Catalogue
from bot.freezes.service import Freezes
from bot.policy.directory import RoleDirectory
from bot.policy.models import GroupMembers, Policy, no_groups
from bot.runs.queries import RunQueries
from bot.runs.rules import PlanRules
from bot.runs.transitions import RunTransitions
from bot.safety.killswitch import KillSwitchLever
from bot.schedule.gate import StartGate
from storage.db import Database, utcnow


@dataclass(frozen=True)
class RunCore:
    db: Database
    catalogue: Catalogue
    policy: Policy
    zone: ZoneInfo
    roles: RoleDirectory
    clock: Callable[[], datetime]
    gate: StartGate
    queries: RunQueries
    rules: PlanRules
    transitions: RunTransitions
    kill_switch: KillSwitchLever
    audit: AuditTrail

    @classmethod
    def build(
        cls,
        db: Database,
        catalogue: Catalogue,
        policy: Policy,
        *,
        zone: ZoneInfo,
        members_of: GroupMembers = no_groups,
        roles: RoleDirectory | None = None,
        clock: Callable[[], datetime] = utcnow,
        gate: StartGate | None = None,
    ) -> RunCore:
        """``roles`` resolves who holds which role before any transaction; without one, a directory over
        ``members_of`` is made (not refreshed in the background: stale groups are read on demand).
        ``gate`` holds starts to the off-peak windows and freezes; without one, it is built on ``db``."""
        roles = roles or RoleDirectory(policy, members_of)
        gate = gate or StartGate(policy, Freezes(db, policy, zone=zone, clock=clock), zone=zone)
        rules = PlanRules(catalogue, policy, gate, zone=zone, clock=clock)
        return cls(
            db=db,
            catalogue=catalogue,
            policy=policy,
            zone=zone,
            roles=roles,
            clock=clock,
            gate=gate,
            queries=RunQueries(db, policy, roles, zone=zone),
            rules=rules,
            transitions=RunTransitions(db, policy, rules, roles, gate, zone=zone, clock=clock),
            kill_switch=KillSwitchLever(db, policy, roles),
            audit=AuditTrail(db),
        )
