"""Requests Slack sends TO the app, byte-exact and signed, plus a tiny HTTP client to deliver them.

Every builder returns a ``SignedRequest(body, headers)``; deliver it with ``post(url, *request)``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import secrets
import time
from typing import Any, NamedTuple, TypedDict, Unpack, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import identity

JSON = dict[str, Any]
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_seq = itertools.count(1)


class SignedRequest(NamedTuple):
    body: bytes
    headers: dict[str, str]

    def payload(self) -> JSON:
        """The decoded content, for assertions: the JSON body, the ``payload`` field, or the form."""
        if self.headers["Content-Type"] == _JSON:
            return json.loads(self.body)  # type: ignore[no-any-return]
        form = dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        return json.loads(form["payload"]) if "payload" in form else form


class Signing(TypedDict, total=False):
    """Keyword options every builder accepts."""

    secret: str  # defaults to identity.SIGNING_SECRET
    timestamp: int  # defaults to now; set an old one to test replay protection
    retry_num: int  # adds X-Slack-Retry-Num / X-Slack-Retry-Reason like Slack's redeliveries
    retry_reason: str  # defaults to "http_timeout"


def sign(body: bytes, secret: str = identity.SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers: HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _request(body: bytes, content_type: str, signing: Signing) -> SignedRequest:
    headers = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        **sign(body, signing.get("secret", identity.SIGNING_SECRET), signing.get("timestamp")),
    }
    if "retry_num" in signing:
        headers["X-Slack-Retry-Num"] = str(signing["retry_num"])
        headers["X-Slack-Retry-Reason"] = signing.get("retry_reason", "http_timeout")
    return SignedRequest(body, headers)


def _form(fields: dict[str, str], signing: Signing) -> SignedRequest:
    return _request(urlencode(fields).encode(), _FORM, signing)


def _interactive(payload: JSON, signing: Signing) -> SignedRequest:
    return _form({"payload": json.dumps(payload, separators=(",", ":"))}, signing)


def trigger_id() -> str:
    """A fresh trigger id in Slack's ``<number>.<number>.<hex>`` shape."""
    return f"{int(time.time())}{next(_seq):04d}.{identity.TEAM_ID[1:]}.{secrets.token_hex(16)}"


def _hook(kind: str) -> str:
    # Not reachable: pass FakeSlack.response_url() when the app will answer through response_url.
    return f"https://hooks.slack.com/{kind}/{identity.TEAM_ID}/{next(_seq)}/{secrets.token_hex(12)}"


def _user(user_id: str, user_name: str | None) -> JSON:
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": identity.TEAM_ID}


def _team() -> JSON:
    return {"id": identity.TEAM_ID, "domain": identity.TEAM_DOMAIN}


# -- slash commands ----------------------------------------------------------------------------------


class CommandOptions(TypedDict, total=False):
    """The fields of a slash command a test may set; the rest are the workspace's."""

    command: str  # defaults to /chaos
    user_name: str
    channel_id: str
    channel_name: str
    response_url: str
    trigger: str


class SlashCommandOptions(CommandOptions, Signing, total=False):
    pass


def slash_command(
    text: str, user_id: str = identity.DEFAULT_USER_ID, **options: Unpack[SlashCommandOptions]
) -> SignedRequest:
    """A slash command invocation, form-encoded with every field Slack sends."""
    signing = cast(Signing, {key: value for key, value in options.items() if key in Signing.__annotations__})
    fields = cast(CommandOptions, {key: value for key, value in options.items() if key not in signing})
    return _form(slash_command_fields(text, user_id, **fields), signing)


def slash_command_fields(
    text: str, user_id: str = identity.DEFAULT_USER_ID, **options: Unpack[CommandOptions]
) -> dict[str, str]:
    """Every field Slack sends with a slash command, before it is form-encoded."""
    return {
        "token": identity.VERIFICATION_TOKEN,
        "team_id": identity.TEAM_ID,
        "team_domain": identity.TEAM_DOMAIN,
        "channel_id": options.get("channel_id", identity.DEFAULT_CHANNEL_ID),
        "channel_name": options.get("channel_name", identity.DEFAULT_CHANNEL_NAME),
        "user_id": user_id,
        "user_name": options.get("user_name") or user_id.lower(),
        "command": options.get("command", "/chaos"),
        "text": text,
        "api_app_id": identity.APP_ID,
        "is_enterprise_install": "false",
        "response_url": options.get("response_url") or _hook("commands"),
        "trigger_id": options.get("trigger") or trigger_id(),
    }


# -- block actions -----------------------------------------------------------------------------------


def block_action(
    action_id: str,
    value: str | None = None,
    user_id: str = identity.DEFAULT_USER_ID,
    *,
    message: JSON | None = None,
    container: JSON | None = None,
    channel_id: str = identity.DEFAULT_CHANNEL_ID,
    channel_name: str = identity.DEFAULT_CHANNEL_NAME,
    view: JSON | None = None,
    block_id: str | None = None,
    action: JSON | None = None,
    user_name: str | None = None,
    response_url: str | None = None,
    trigger: str | None = None,
    **signing: Unpack[Signing],
) -> SignedRequest:
    """A ``block_actions`` interaction: a button click on ``message`` (default) or inside ``view``.

    ``block_id`` and the button text are looked up in the message/view blocks when not given;
    ``action`` overrides the action entry entirely (e.g. for selects).
    """
    source = view if view is not None else message or {}
    entry = action or _button_action(action_id, value, block_id, source.get("blocks") or [])
    payload: JSON = {
        "type": "block_actions",
        "user": _user(user_id, user_name),
        "api_app_id": identity.APP_ID,
        "token": identity.VERIFICATION_TOKEN,
        "container": container or _container(message, view, channel_id),
        "trigger_id": trigger or trigger_id(),
        "team": _team(),
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [entry],
    }
    if view is not None:
        payload["view"] = view
    else:
        payload["channel"] = {"id": channel_id, "name": channel_name}
        payload["message"] = message or {}
        payload["response_url"] = response_url or _hook("actions")
    return _interactive(payload, signing)


def _container(message: JSON | None, view: JSON | None, channel_id: str) -> JSON:
    if view is not None:
        return {"type": "view", "view_id": view.get("id", "")}
    return {
        "type": "message",
        "message_ts": (message or {}).get("ts", ""),
        "channel_id": channel_id,
        "is_ephemeral": False,
    }


def _button_action(action_id: str, value: str | None, block_id: str | None, blocks: list[JSON]) -> JSON:
    found_block, element = _find_element(blocks, action_id)
    entry: JSON = {
        "action_id": action_id,
        "block_id": block_id or found_block or f"b{secrets.token_hex(3)}",
        "type": "button",
        "action_ts": f"{time.time():.6f}",
        "text": element.get("text") or {"type": "plain_text", "text": action_id, "emoji": True},
    }
    if value is not None or "value" in element:
        entry["value"] = value if value is not None else element["value"]
    if "style" in element:
        entry["style"] = element["style"]
    return entry


def _find_element(blocks: list[JSON], action_id: str) -> tuple[str | None, JSON]:
    for block in blocks:
        candidates = [*block.get("elements", []), block.get("accessory") or {}, block.get("element") or {}]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, {}


# -- view submissions --------------------------------------------------------------------------------


def view_submission(
    callback_id: str,
    values: JSON,
    user_id: str = identity.DEFAULT_USER_ID,
    private_metadata: str = "",
    *,
    view_id: str | None = None,
    view: JSON | None = None,
    user_name: str | None = None,
    **signing: Unpack[Signing],
) -> SignedRequest:
    """A ``view_submission`` with ``view.state.values`` = ``values``.

    ``values`` is Slack's ``{block_id: {action_id: {"type": ..., "value": ...}}}`` structure; build the
    leaves with ``text_value``, ``select_value``, ``date_value``, ``time_value``, ``datetime_value``.
    ``view`` is the modal as opened (e.g. ``fake.last("views.open").response["view"]``).
    """
    submitted = _submitted_view(callback_id, values, private_metadata, view_id, view)
    payload: JSON = {
        "type": "view_submission",
        "team": _team(),
        "user": _user(user_id, user_name),
        "api_app_id": identity.APP_ID,
        "token": identity.VERIFICATION_TOKEN,
        "trigger_id": trigger_id(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload, signing)


def _submitted_view(
    callback_id: str, values: JSON, private_metadata: str, view_id: str | None, view: JSON | None
) -> JSON:
    base = dict(view or {})
    resolved_id = view_id or base.get("id") or f"V{secrets.token_hex(5).upper()}"
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Modal", "emoji": True},
        "blocks": [],
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "external_id": "",
        "previous_view_id": None,
        "root_view_id": resolved_id,
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        **base,
        "id": resolved_id,
        "team_id": identity.TEAM_ID,
        "app_id": identity.APP_ID,
        "bot_id": identity.BOT_ID,
        "app_installed_team_id": identity.TEAM_ID,
        "callback_id": callback_id,
        "private_metadata": private_metadata,
        "state": {"values": values},
    }


def text_value(value: str | None, kind: str = "plain_text_input") -> JSON:
    return {"type": kind, "value": value}


def select_value(value: str | None, text: str | None = None, kind: str = "static_select") -> JSON:
    option = None if value is None else {"text": {"type": "plain_text", "text": text or value}, "value": value}
    return {"type": kind, "selected_option": option}


def date_value(date: str | None) -> JSON:
    return {"type": "datepicker", "selected_date": date}


def time_value(hhmm: str | None, timezone: str = "Europe/London") -> JSON:
    return {"type": "timepicker", "selected_time": hhmm, "timezone": timezone}


def datetime_value(unix_seconds: int | None) -> JSON:
    return {"type": "datetimepicker", "selected_date_time": unix_seconds}


# -- Events API --------------------------------------------------------------------------------------


def event_callback(
    event: JSON, *, event_id: str | None = None, event_time: int | None = None, **signing: Unpack[Signing]
) -> SignedRequest:
    """An Events API ``event_callback`` envelope around ``event``, JSON-encoded."""
    envelope = {
        "token": identity.VERIFICATION_TOKEN,
        "team_id": identity.TEAM_ID,
        "context_team_id": identity.TEAM_ID,
        "api_app_id": identity.APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": event_time or int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": identity.TEAM_ID,
                "user_id": identity.BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return _json(envelope, signing)


def app_home_opened(user_id: str = identity.DEFAULT_USER_ID, *, tab: str = "home", view: JSON | None = None) -> JSON:
    """The ``app_home_opened`` event body (wrap it with ``event_callback``)."""
    event: JSON = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D{user_id[1:]}",
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return event


def url_verification(challenge: str, **signing: Unpack[Signing]) -> SignedRequest:
    return _json({"token": identity.VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}, signing)


def _json(document: JSON, signing: Signing) -> SignedRequest:
    return _request(json.dumps(document).encode(), _JSON, signing)


# -- delivery ----------------------------------------------------------------------------------------


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` to ``url``; returns (status, lower-cased headers, body) without raising on 4xx/5xx."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        path = parts.path or "/"
        connection.request("POST", f"{path}?{parts.query}" if parts.query else path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
