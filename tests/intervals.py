"""The background intervals of every chaosbot the tests start (``chaosbot serve``, ``chaosbot shell``).

Production keeps the defaults of bot/settings.py. The tests' servers and shells run the same jobs in fractions
of a second, so a test waits for a scheduled start, a retrospective, a reminder or a dead controller's revert
for a second or two, not for a production interval. A test that needs other values sets them itself.
"""

from __future__ import annotations

import pytest

TICK_SECONDS = 0.5  # scheduled notices and automatic starts
# Renewed every second, so five renewals may be missed: a replica starved of CPU on a loaded two-core machine
# (a parallel run and its servers) must not lose its run to the other replica's sweep.
LEASE_SECONDS = 6.0
DEAD_MANS_SWITCH_SECONDS = 0.5  # with the lease: a dead controller's fault is off within ~7 s (15 s in production)
# A start waits this long for Slack to take its announcement (10 s in production): long enough for a loaded
# machine's healthy fake Slack, short enough for the tests where Slack hangs.
ANNOUNCE_TIMEOUT_SECONDS = 3.0

# Each job a server runs costs it some CPU, and a test run has a dozen servers idling on two cores: a job that
# no test waits for runs every few seconds, not every few hundred milliseconds.
FAST_INTERVALS = {
    "CHAOSBOT_TICK_SECONDS": str(TICK_SECONDS),
    "CHAOSBOT_FIRING_RETRY_SECONDS": "1",
    "CHAOSBOT_ANNOUNCE_TIMEOUT_SECONDS": str(ANNOUNCE_TIMEOUT_SECONDS),
    "CHAOSBOT_CALENDAR_POLL_SECONDS": "5",
    "CHAOSBOT_RETRO_SWEEP_SECONDS": "1",
    "CHAOSBOT_BACKLOG_FILING_SECONDS": "1",
    "CHAOSBOT_SUMMARY_CHECK_SECONDS": "2",
    "CHAOSBOT_DASHBOARD_RESEND_SECONDS": "5",
    "CHAOSBOT_ALARM_CHECK_SECONDS": "0.5",
    "CHAOSBOT_PLAN_EXPIRY_CHECK_SECONDS": "5",
    "CHAOSBOT_LEASE_SECONDS": str(LEASE_SECONDS),
    "CHAOSBOT_LEASE_RENEW_SECONDS": "1",
    "CHAOSBOT_DEAD_MANS_SWITCH_SECONDS": str(DEAD_MANS_SWITCH_SECONDS),
    "CHAOSBOT_HEARTBEAT_SECONDS": "2",
    "CHAOSBOT_HANDOVER_SECONDS": "8",
    # A reply waits for a quiet moment between acks (a burst's acks first); tests send one request at a time.
    "CHAOSBOT_QUIET_GAP_SECONDS": "0.001",
    "CHAOSBOT_OUTBOX_BACKOFF_SECONDS": "0.1",
    "CHAOSBOT_SLACK_RETRY_SECONDS": "0.05",  # a live replica adopts within a sweep; "alone" never waits for it
}


def run_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a runtime built in this process (``chaosbot shell``): the fast intervals, through the environment."""
    for name, value in FAST_INTERVALS.items():
        monkeypatch.setenv(name, value)
