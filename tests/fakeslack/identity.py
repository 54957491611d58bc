"""Identifiers shared by the fake Web API and the wire helpers, so both describe one workspace."""

from __future__ import annotations

TEAM_ID = "T0CHAOS01"
TEAM_DOMAIN = "chaos-test"
TEAM_NAME = "Chaos Test"
APP_ID = "A0CHAOS01"
BOT_ID = "B0CHAOS01"
BOT_USER_ID = "U0CHAOSBOT"
BOT_USER_NAME = "chaosbot"

BOT_TOKEN = "xoxb-0000000001-0000000002-fakeslacktoken"
# App-level token (Socket Mode): good for apps.connections.open only.
APP_TOKEN = "xapp-1-A0CHAOS01-0000000003-fakeslackapptoken"
SIGNING_SECRET = "fakeslack-signing-secret-0123456789"
# Legacy verification token: Slack still sends it in payloads, Bolt ignores it.
VERIFICATION_TOKEN = "fakeslackverificationtoken"

DEFAULT_USER_ID = "U0OPERATOR"
DEFAULT_USER_NAME = "operator"
DEFAULT_CHANNEL_ID = "C0CHAOS01"
DEFAULT_CHANNEL_NAME = "chaos-ops"
