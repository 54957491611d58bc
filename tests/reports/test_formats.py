from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.reports.formats import render
from storage.db import Database
from tests.reports.seed import SYDNEY, summary_of


@pytest.fixture
def db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """Rendering does not depend on the database: SQLite only (``seeded`` uses this ``db``)."""
    path = tmp_path / "chaosbot.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def test_markdown_of_the_month(db: Database, seeded: dict[str, int]) -> None:
    r5 = seeded["r5"]
    month = summary_of(db, "2026-11", link_for=lambda run_id: f"https://t/{run_id}" if run_id == r5 else None)
    text = render(month, "md", zone=SYDNEY, name_of=lambda user: {"U0OWNER": "Ada"}.get(user, user))
    assert text.startswith("# Chaos experiments, November 2026\n")
    assert "8 runs: 3 aborted, 2 completed, 1 cancelled, 1 expired, 1 failed." in text
    assert "Hypotheses: 2 held, 1 refuted, 3 not tested." in text
    assert "Aborts: 1 controller lost, 1 stop condition breached, 1 stopped by a person." in text
    assert "Mean recovery 42.5 s against a mean RTO of 67.5 s; RTO met 3 times, missed 1 (4 measured)." in text
    assert f"Worst: RUN-{r5}, 100.0 s against 60.0 s (missed by 40.0 s)." in text
    assert "3 opened and 2 done in the period; 3 open at its end, 2 of them overdue." in text
    assert "- CE-06: last run Wed 15 Jul 2026 10:00 AEST" in text
    assert (
        f"| [RUN-{r5}](https://t/{r5}) | Tue 10 Nov 2026 10:00 AEDT | CE-02 | staging | Ada | aborted | refuted |"
        in text
    )


def test_markdown_of_the_quarter(db: Database, seeded: dict[str, int]) -> None:
    text = render(summary_of(db, "2026-Q4"), "md", zone=SYDNEY)
    assert text.startswith("# Chaos experiments: quarterly update, Q4 2026\n")
    assert "| 2026-11 | 8 | 2 | 3 | 1 | 1 | 3 |" in text
    assert f"- **CE-02**: hypothesis refuted 3 times (last: RUN-{seeded['r12']}, error rate 9% > 5%); " in text
    assert "5 action items, 2 still open." in text
    assert f"  - AI-{seeded['a2']} retry budget (U0FIXER, open)" in text
    assert "## Each run" not in text


def test_csv_is_one_figure_per_row(db: Database, seeded: dict[str, int]) -> None:
    rows = list(csv.DictReader(io.StringIO(render(summary_of(db, "2026-11"), "csv", zone=SYDNEY))))
    figures = {(row["section"], row["name"]): row["value"] for row in rows}
    assert figures[("runs", "total")] == "8"
    assert figures[("hypotheses", "refuted")] == "1"
    assert figures[("recovery", "mean seconds")] == "42.5"
    assert figures[("action items", "overdue")] == "2"
    assert figures[("not run in 90 days", "CE-06")].startswith("2026-07-15")
    assert figures[("run", f"RUN-{seeded['r6']}")] == "aborted"


def test_json_round_trips_the_numbers(db: Database, seeded: dict[str, int]) -> None:
    document = json.loads(render(summary_of(db, "2026-Q4"), "json", zone=SYDNEY))
    assert document["period"] == {"kind": "quarter", "label": "2026-Q4"}
    assert document["hypotheses"] == {"held": 4, "refuted": 3, "not_tested": 3}
    assert [month["runs"] for month in document["trend"]] == [2, 8, 2]
    assert document["learnings"][0]["experiment_id"] == "CE-02"
    assert document["as_of"] == "2026-12-31T13:00:00+00:00"


def test_an_unknown_format_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="expected one of md, csv, json"):
        render(summary_of(db, "2030-01"), "xml", zone=SYDNEY)
