"""The composition root: settings → database, catalogue, policy → the runs core (``RunCore``)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalogue.models import Catalogue
from bot.catalogue.service import load_catalogue
from bot.policy.directory import RoleDirectory
from bot.policy.models import GroupMembers, Policy, no_groups
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.settings import Settings
from storage.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    catalogue: Catalogue
    policy: Policy
    roles: RoleDirectory  # start() it to keep group members fresh in the background; close() it at the end
    core: RunCore


def build_context(
    settings: Settings, *, members_of: GroupMembers = no_groups, check_migrated: bool = True
) -> AppContext:
    """Load and validate everything at start, so a bad file or an unmigrated database fails loudly now."""
    catalogue = load_catalogue(settings.catalogue_path)
    policy = load_policy(settings.policy_path)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    if check_migrated:
        db.check_migrated()
    roles = RoleDirectory(policy, members_of, ttl=settings.role_cache_seconds)
    core = RunCore.build(db, catalogue, policy, zone=settings.zone, roles=roles)
    return AppContext(settings=settings, db=db, catalogue=catalogue, policy=policy, roles=roles, core=core)
