"""Who holds which role, resolved before any transaction.

Roles held through a user group need the chat platform (Slack's ``usergroups.users.list``: a network call
with a timeout and retries). A flow must never make that call while a database transaction is open (on
SQLite that would hold the process-wide write lock while Slack answers), so the flows ask this directory
first. It keeps a snapshot of every group named in the policy, refreshed in the background, and reads a
stale group again on demand; when a group can be read neither now nor recently, it refuses clearly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.errors import RolesUnavailable
from bot.policy.models import GroupMembers, Policy, Role, no_groups

log = logging.getLogger(__name__)
TTL_SECONDS = 60.0  # a snapshot this fresh is used as is
GRACE_SECONDS = 600.0  # when a group cannot be read, a snapshot this old is still trusted
UNAVAILABLE = "I could not check who holds the approver roles just now (Slack did not answer). Try again in a minute."


class RoleDirectory:
    """Roles of a person: users named in the policy, plus members of its user groups from a cached snapshot."""

    def __init__(
        self,
        policy: Policy,
        members_of: GroupMembers = no_groups,
        *,
        ttl: float = TTL_SECONDS,
        grace: float = GRACE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.members_of = members_of
        self.ttl = ttl
        self.grace = max(grace, ttl)
        self.monotonic = monotonic
        self._snapshot: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def roles_of(self, user_id: str) -> frozenset[Role]:
        """The roles ``user_id`` holds, or ``RolesUnavailable``.

        May read a stale group from the chat platform: never call it inside a transaction."""
        members = {group: self._members(group) for group in self.policy.groups()}
        return frozenset(self.policy.roles_of(user_id, lambda group: members.get(group, frozenset())))

    def is_approver(self, user_id: str) -> bool:
        return bool(self.roles_of(user_id))

    def refresh(self) -> None:
        """Read every group again; a group that cannot be read keeps its last snapshot."""
        for group in sorted(self.policy.groups()):
            if self._stop.is_set():
                return
            try:
                self._read(group)
            except Exception:
                log.warning("could not read the members of user group %s; keeping the last snapshot", group)

    def start(self) -> None:
        """Keep the snapshot fresh in a background thread (none when the policy names no group)."""
        if self._thread is not None or not self.policy.groups():
            return
        self._thread = threading.Thread(target=self._keep_fresh, name="chaosbot-roles", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _keep_fresh(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.ttl / 2)

    def _members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._snapshot.get(group)
        now = self.monotonic()
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            return self._read(group)
        except Exception:
            log.warning("could not read the members of user group %s", group, exc_info=True)
            if cached is not None and now - cached[0] < self.grace:
                return cached[1]
            raise RolesUnavailable(UNAVAILABLE) from None

    def _read(self, group: str) -> frozenset[str]:
        members = frozenset(self.members_of(group))
        with self._lock:
            self._snapshot[group] = (self.monotonic(), members)
        return members
