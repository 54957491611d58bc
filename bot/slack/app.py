"""The Bolt app: verify, deduplicate, ack at once, and hand the work to the shared handlers.

Listeners run with ``process_before_response=True`` (the ack is the HTTP response), so
they only parse and ack; anything slow runs in the background pool afterwards.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.interface.handlers import Handlers
from bot.interface.surface import Background, Request
from bot.observability import REQUESTS
from storage.dedup import RequestLedger

log = logging.getLogger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The payload's own identity: the same for Slack's retries of one delivery, different otherwise."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    kind = body.get("type") or ("command" if body.get("command") else None)
    trigger = body.get("trigger_id")
    if kind and trigger:
        return f"{kind}:{trigger}"
    return None


def request_kind(body: dict[str, Any]) -> str:
    if body.get("command"):
        return "command"
    return str(body.get("type") or "unknown")


def create_app(
    *,
    client: WebClient,
    signing_secret: str,
    handlers: Handlers,
    ledger: RequestLedger,
    background: Background,
) -> App:
    app = App(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        token_verification_enabled=False,  # auth.test is checked once at start by serve, not per app build
        raise_error_for_unhandled_request=False,
    )
    app.use(_deduplicate(ledger))
    _register(app, handlers, background)
    return app


def _deduplicate(ledger: RequestLedger) -> Callable[..., Any]:
    def deduplicate(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        body = req.body or {}
        key = delivery_key(body)
        if key is not None and not ledger.first_time(key):
            REQUESTS.labels(request_kind(body), "duplicate").inc()
            log.info("ignored a repeated delivery %s", key)
            return BoltResponse(status=200, body="")
        return next()

    return deduplicate


def _register(app: App, handlers: Handlers, background: Background) -> None:
    @app.command("/chaos")
    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        request = Request(user=body["user_id"], channel=body.get("channel_id"), trigger_id=body.get("trigger_id"))
        REQUESTS.labels("command", "ok").inc()
        background(lambda: handlers.command(request, body.get("text") or ""))

    @app.action(re.compile(r"^run\."))
    def on_action(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id")
        request = Request(user=body["user"]["id"], channel=channel, trigger_id=body.get("trigger_id"))
        REQUESTS.labels("block_actions", "ok").inc()
        background(lambda: handlers.action(request, action["action_id"], action.get("value") or ""))

    @app.view(re.compile(r"^(plan|reject)\.submit$"))
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request = Request(user=body["user"]["id"], trigger_id=body.get("trigger_id"))
        values = view.get("state", {}).get("values", {})
        result = handlers.submit(request, view["callback_id"], values, view.get("private_metadata") or "")
        if result.errors:
            REQUESTS.labels("view_submission", "invalid").inc()
            ack(response_action="errors", errors=result.errors)
            return
        ack()
        REQUESTS.labels("view_submission", "ok").inc()
        if result.then is not None:
            background(result.then)

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        REQUESTS.labels("app_home_opened", "ok").inc()
        user = event["user"]
        background(lambda: handlers.guarded(Request(user=user), lambda: handlers.home(user)))
