"""The seeded quarter shared by the summary and format tests (described in test_summary.py)."""

from __future__ import annotations

from datetime import date

import pytest

from storage.db import Database
from tests.reports.seed import add_item, add_outcome, add_run, local


@pytest.fixture
def seeded(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.transaction() as s:
        ids["r13"] = add_run(s, experiment="CE-06", state="completed", planned=local(2026, 7, 15))
        add_outcome(s, ids["r13"], result="completed", held=True, recovery=5, rto=60)

        ids["r1"] = add_run(s, experiment="CE-01", state="completed", planned=local(2026, 10, 5))
        add_outcome(s, ids["r1"], result="completed", held=True, recovery=30, rto=60)
        ids["r2"] = add_run(
            s,
            experiment="CE-02",
            state="aborted",
            planned=local(2026, 10, 14),
            ended_by="chaosbot",
            end_reason="p95 latency 900 ms > 500 ms",
        )
        add_outcome(
            s, ids["r2"], result="aborted", held=False, recovery=90, rto=60, breach="p95 latency 900 ms > 500 ms"
        )

        ids["r3"] = add_run(s, experiment="CE-01", state="completed", planned=local(2026, 11, 1, 0, 10))
        add_outcome(s, ids["r3"], result="completed", held=True, recovery=40, rto=60)
        ids["r4"] = add_run(s, experiment="CE-03", state="completed", planned=local(2026, 11, 4))
        add_outcome(s, ids["r4"], result="completed", held=True, recovery=20, rto=30)
        ids["r5"] = add_run(
            s,
            experiment="CE-02",
            state="aborted",
            planned=local(2026, 11, 10),
            ended_by="chaosbot",
            end_reason="error rate 7% > 5%",
        )
        add_outcome(s, ids["r5"], result="aborted", held=False, recovery=100, rto=60, breach="error rate 7% > 5%")
        ids["r6"] = add_run(
            s,
            experiment="CE-04",
            state="aborted",
            planned=local(2026, 11, 12),
            ended_by="U0PERSON",
            end_reason="client delivery in progress",
        )
        add_outcome(s, ids["r6"], result="aborted", held=None, recovery=10, rto=120)
        ids["r7"] = add_run(
            s,
            experiment="CE-05",
            state="aborted",
            planned=local(2026, 11, 18),
            ended_by="chaosbot",
            end_reason="controller lost: the chaosbot process stopped renewing its lease",
        )
        add_outcome(s, ids["r7"], result="aborted", held=None, recovery=None, rto=300)
        ids["r8"] = add_run(
            s,
            experiment="CE-03",
            state="failed",
            planned=local(2026, 11, 20),
            ended_by="chaosbot",
            end_reason="inject failed",
        )
        ids["r9"] = add_run(s, experiment="CE-01", state="cancelled", planned=local(2026, 11, 24), ran=False)
        ids["r10"] = add_run(s, experiment="CE-01", state="expired", planned=local(2026, 11, 30, 23, 30), ran=False)

        ids["r11"] = add_run(s, experiment="CE-01", state="completed", planned=local(2026, 12, 1, 0, 30))
        add_outcome(s, ids["r11"], result="completed", held=True, recovery=50, rto=60)
        ids["r12"] = add_run(
            s,
            experiment="CE-02",
            state="aborted",
            planned=local(2026, 12, 5),
            ended_by="chaosbot",
            end_reason="error rate 9% > 5%",
        )
        add_outcome(s, ids["r12"], result="aborted", held=False, recovery=200, rto=60, breach="error rate 9% > 5%")

        ids["a1"] = add_item(
            s,
            ids["r2"],
            what="cache the share token",
            created=local(2026, 10, 20),
            due=date(2026, 11, 10),
            done=local(2026, 11, 5),
        )
        ids["a6"] = add_item(
            s,
            ids["r2"],
            what="alert on p95",
            created=local(2026, 10, 21),
            due=date(2026, 10, 30),
            done=local(2026, 11, 29),
        )
        ids["a2"] = add_item(s, ids["r5"], what="retry budget", created=local(2026, 11, 12), due=date(2026, 11, 20))
        ids["a3"] = add_item(
            s,
            ids["r5"],
            what="circuit breaker",
            created=local(2026, 11, 12),
            due=date(2026, 12, 15),
            done=local(2026, 12, 2),
        )
        ids["a4"] = add_item(s, ids["r3"], what="runbook update", created=local(2026, 11, 5), due=date(2026, 11, 30))
        ids["a5"] = add_item(
            s, ids["r12"], what="fallback provider", created=local(2026, 12, 6), due=date(2026, 12, 20)
        )
    return ids
