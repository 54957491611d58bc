"""The reference app of the ack benchmark: a bare slack-bolt app whose listeners only ack.

Served exactly like the product's reference figure: gunicorn, gthread, 1 worker x 4 threads, Bolt's WSGI
adapter, ``process_before_response`` left at Bolt's default (False)::

    SLACK_BOT_TOKEN=... SLACK_SIGNING_SECRET=... SLACK_API_URL=http://.../api/ \\
        .venv/bin/gunicorn -k gthread -w 1 --threads 4 --chdir bench bare_app:app

``SLACK_API_URL`` points the client at the fake Slack (Bolt calls ``auth.test`` once at start).
"""

from __future__ import annotations

import os
import re

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

bolt = App(
    client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@bolt.command("/chaos")
def on_command(ack: Ack) -> None:
    ack()


@bolt.action(re.compile(r"^run\."))
def on_action(ack: Ack) -> None:
    ack()


app = SlackRequestHandler(bolt)  # the WSGI callable gunicorn serves
