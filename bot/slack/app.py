"""The Bolt app: verify, deduplicate, ack at once, and hand the work to the shared handlers.

Listeners run with ``process_before_response=True`` (the ack is the HTTP response), so
they only parse and ack; everything else, including recognising a repeated delivery, runs after it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.interface import ids
from bot.interface.handlers import Handlers
from bot.interface.surface import Request
from bot.observability import REQUESTS
from bot.pools import Pools
from bot.tracing import annotate, span
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
    pools: Pools,
) -> App:
    app = App(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        token_verification_enabled=False,  # auth.test is checked once at start by serve, not per app build
        raise_error_for_unhandled_request=False,
    )
    _register(app, handlers, _Deliveries(ledger, pools))
    return app


class _Deliveries:
    """Runs the work of each delivery once, after the ack.

    The ledger check happens here, not in middleware before the ack: it is a database write, and under
    a burst on SQLite it made acks queue for the write lock. A repeat is still answered 200 and dropped.
    """

    def __init__(self, ledger: RequestLedger, pools: Pools) -> None:
        self.ledger = ledger
        self.pools = pools

    def after_ack(
        self, body: dict[str, Any], work: Callable[[], None], *, urgent: bool = False, what: str | None = None
    ) -> None:
        """``what``: the command's name, the button's action id or the form's callback id, for the traces (never
        what a person typed)."""
        key, kind = delivery_key(body), request_kind(body)
        traced = {"slack.request_kind": kind, "slack.what": what, "slack.urgent": urgent}
        annotate(traced)  # on the request's span, which ends with the ack

        def once() -> None:
            with span("slack.work", attributes=traced):
                if key is not None and not self.ledger.first_time(key):
                    REQUESTS.labels(kind, "duplicate").inc()
                    annotate(duplicate=True)
                    log.info("ignored a repeated delivery %s", key)
                    return
                REQUESTS.labels(kind, "handled").inc()
                work()

        (self.pools.urgent if urgent else self.pools.work)(once)


def _register(app: App, handlers: Handlers, deliveries: _Deliveries) -> None:
    routes = handlers.routes

    @app.command("/chaos")
    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        request = Request(user=body["user_id"], channel=body.get("channel_id"), trigger_id=body.get("trigger_id"))
        text = body.get("text") or ""
        name = next(iter(text.split()), "help").lower()
        deliveries.after_ack(
            body,
            lambda: handlers.command(request, text),
            urgent=handlers.urgent(command=text),
            what=name if name in routes.commands else "unknown",
        )

    routed = "|".join(re.escape(action_id) for action_id in routes.actions)

    # Every routed button, and any other run button (from an older chaosbot: answered, not left spinning).
    @app.action(re.compile(f"^({re.escape(ids.RUN_ACTION_PREFIX)}|({routed})$)"))
    def on_action(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id")
        request = Request(user=body["user"]["id"], channel=channel, trigger_id=body.get("trigger_id"))
        action_id, value = action["action_id"], action.get("value") or ""
        deliveries.after_ack(
            body,
            lambda: handlers.action(request, action_id, value),
            urgent=handlers.urgent(action_id=action_id),
            what=action_id,
        )

    @app.view(re.compile("^(" + "|".join(re.escape(form) for form in routes.forms) + ")$"))
    def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request = Request(user=body["user"]["id"], trigger_id=body.get("trigger_id"))
        values = view.get("state", {}).get("values", {})
        result = handlers.submit(request, view["callback_id"], values, view.get("private_metadata") or "")
        if result.errors:
            REQUESTS.labels("view_submission", "invalid").inc()
            ack(response_action="errors", errors=result.errors)
            return
        ack()
        then = result.then
        deliveries.after_ack(body, then if then is not None else lambda: None, what=view["callback_id"])

    @app.event("app_home_opened")
    def on_home(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        deliveries.after_ack(
            body, lambda: handlers.guarded(Request(user=user), lambda: handlers.home(user)), what="app_home_opened"
        )
