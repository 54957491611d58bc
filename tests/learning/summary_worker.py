"""A replica posting the scheduled summaries, in its own OS process, for the exactly-once test.

    python -m tests.learning.summary_worker DATABASE_URL SLACK_URL CHANNEL NOW_ISO --seconds 3

Runs ``Summaries.post_due`` every 20 ms for ``--seconds`` with its clock fixed at NOW_ISO (the posting
moment has passed), and prints the keys it posted as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from slack_sdk import WebClient

from bot.catalogue.service import load_catalogue
from bot.interface.learning.summaries import Summaries
from bot.interface.render import SLACK
from bot.policy.service import load_policy
from bot.reports.flows import Reports
from bot.slack.files import SlackRetroOutlet
from storage.db import Database
from tests.fakeslack import identity

ZONE = ZoneInfo("Australia/Sydney")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("slack_url")
    parser.add_argument("channel")
    parser.add_argument("now")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now)
    db = Database(args.url)
    reports = Reports(
        db,
        experiments=[e.id for e in load_catalogue().experiments],
        reporting=load_policy().reporting,
        zone=ZONE,
        clock=lambda: now,
    )
    outlet = SlackRetroOutlet(WebClient(token=identity.BOT_TOKEN, base_url=args.slack_url))
    summaries = Summaries(
        db,
        reports,
        outlet=outlet,
        render=SLACK,
        zone=ZONE,
        channel=args.channel,
        holder=f"pid-{os.getpid()}",
        clock=lambda: now,
    )
    posted: list[str] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        posted += summaries.post_due()
        time.sleep(0.02)
    print(json.dumps(posted))
    db.dispose()


if __name__ == "__main__":
    main()
