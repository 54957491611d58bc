"""Slack Web API method behaviour for FakeSlack: workspace state plus one handler per method.

Handlers take the decoded request params and return the JSON response, or raise ``SlackError``.
They are not thread-safe by themselves; FakeSlack calls them under its lock.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import identity
from .blockkit import validate_blocks, validate_view

JSON = dict[str, Any]

MAX_TEXT = 40_000
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_MIMETYPES = {"png": ("image/png", "png"), "csv": ("text/csv", "csv"), "md": ("text/markdown", "markdown")}


class SlackError(Exception):
    """A Web API error answered as ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra

    def body(self) -> JSON:
        return {"ok": False, "error": self.code, **self.extra}


def invalid_arguments(*messages: str) -> SlackError:
    return SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]})


@dataclass
class FakeFile:
    """A file created by files.getUploadURLExternal; ``content`` is set once its upload URL is POSTed."""

    id: str
    filename: str
    length: int
    upload_key: str
    created: int
    content: bytes | None = None
    title: str | None = None
    channels: list[str] = field(default_factory=list)
    alt_txt: str | None = None
    thread_ts: str | None = None  # the thread it was shared into

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.filename,
            "title": self.title or self.filename,
            "mimetype": _MIMETYPES.get(self.filename.rsplit(".", 1)[-1].lower(), ("text/plain", "text"))[0],
            "filetype": _MIMETYPES.get(self.filename.rsplit(".", 1)[-1].lower(), ("text/plain", "text"))[1],
            "alt_txt": self.alt_txt or "",
            "user": identity.BOT_USER_ID,
            "size": len(self.content or b""),
            "url_private": f"https://files.slack.com/files-pri/{identity.TEAM_ID}-{self.id}/{self.filename}",
            "permalink": f"https://{identity.TEAM_DOMAIN}.slack.com/files/{identity.BOT_USER_ID}/{self.id}",
            "channels": list(self.channels),
        }


class SlackState:
    """Everything a test can observe about the fake workspace."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.users: dict[str, JSON] = {}
        self.channels: dict[str, JSON] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.messages: dict[str, list[JSON]] = {}
        self.ephemerals: list[JSON] = []
        self.views: dict[str, JSON] = {}
        self.home_views: dict[str, str] = {}
        self.files: dict[str, FakeFile] = {}
        self.used_triggers: set[str] = set()
        self.expired_triggers: set[str] = set()
        self._ids = itertools.count(1)
        self._last_us = 0
        self.add_user(identity.BOT_USER_ID, identity.BOT_USER_NAME, is_bot=True)
        self.add_user(identity.DEFAULT_USER_ID, identity.DEFAULT_USER_NAME)
        self.add_channel(identity.DEFAULT_CHANNEL_ID, identity.DEFAULT_CHANNEL_NAME)

    # -- ids ----------------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):09d}"

    def next_ts(self) -> str:
        # Integer microseconds: float seconds cannot hold 16 significant digits reliably.
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    # -- directory ----------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str | None = None, **attrs: Any) -> JSON:
        name = name or user_id.lower()
        real_name = attrs.pop("real_name", name.title())
        profile = {
            "real_name": real_name,
            "display_name": name,
            "email": attrs.pop("email", f"{name}@{identity.TEAM_DOMAIN}.example"),
        }
        user = {
            "id": user_id,
            "team_id": identity.TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_admin": False,
            "is_owner": False,
            "is_bot": False,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            **attrs,
        }
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str | None = None, **attrs: Any) -> JSON:
        is_im = channel_id.startswith("D")
        is_private = attrs.pop("is_private", channel_id.startswith("G"))
        channel = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_channel": not (is_im or is_private),
            "is_group": is_private,
            "is_im": is_im,
            "is_private": is_private or is_im,
            "is_archived": False,
            "is_member": True,
            "created": int(time.time()),
            "creator": identity.DEFAULT_USER_ID,
            **attrs,
        }
        self.channels[channel_id] = channel
        self.messages.setdefault(channel_id, [])
        return channel

    def user(self, user_id: Any) -> JSON:
        if not isinstance(user_id, str) or not user_id:
            raise SlackError("user_not_found")
        if user_id not in self.users:
            if self.strict or not _USER_ID.fullmatch(user_id):
                raise SlackError("user_not_found")
            self.add_user(user_id)
        return self.users[user_id]

    def channel(self, ref: Any) -> JSON:
        """Resolve a channel id, ``#name`` or a user id (which opens the bot's DM with that user)."""
        if not isinstance(ref, str) or not ref:
            raise SlackError("channel_not_found")
        if _USER_ID.fullmatch(ref):
            self.user(ref)
            dm_id = f"D{ref[1:]}"
            return self.channels.get(dm_id) or self.add_channel(dm_id, ref.lower())
        by_name = {c["name"]: c for c in self.channels.values()}
        if ref.lstrip("#") in by_name and (ref.startswith("#") or ref not in self.channels):
            return by_name[ref.lstrip("#")]
        if ref not in self.channels:
            if self.strict or not _CHANNEL_ID.fullmatch(ref):
                raise SlackError("channel_not_found")
            self.add_channel(ref)
        return self.channels[ref]

    def writable_channel(self, ref: Any) -> JSON:
        channel = self.channel(ref)
        if channel["is_archived"]:
            raise SlackError("is_archived")
        if not channel["is_member"]:
            raise SlackError("not_in_channel")
        return channel

    # -- messages -----------------------------------------------------------------------------------

    def find_message(self, channel_id: str, ts: Any) -> JSON:
        for message in self.messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def append_message(self, channel_id: str, message: JSON) -> None:
        self.messages.setdefault(channel_id, []).append(message)
        thread_ts = message.get("thread_ts")
        if not thread_ts or thread_ts == message["ts"]:
            return
        parent = next((m for m in self.messages[channel_id] if m["ts"] == thread_ts), None)
        if parent is not None:
            parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = message["ts"]
            parent["reply_users"] = sorted({*parent.get("reply_users", []), message["user"]})


def _bot_message(ts: str, params: JSON) -> JSON:
    message: JSON = {
        "type": "message",
        "user": identity.BOT_USER_ID,
        "bot_id": identity.BOT_ID,
        "app_id": identity.APP_ID,
        "team": identity.TEAM_ID,
        "ts": ts,
        "text": params.get("text") or "",
        "bot_profile": {"id": identity.BOT_ID, "app_id": identity.APP_ID, "name": identity.BOT_USER_NAME},
    }
    for key in ("blocks", "attachments", "metadata"):
        if params.get(key):
            message[key] = params[key]
    if params.get("thread_ts"):
        message["thread_ts"] = params["thread_ts"]
        message["parent_user_id"] = identity.BOT_USER_ID
    return message


def check_content(params: JSON, *, require: bool = True) -> None:
    """Validate text/blocks/attachments the way chat.postMessage and friends do."""
    text, blocks, attachments = params.get("text"), params.get("blocks"), params.get("attachments")
    if require and not (text or blocks or attachments):
        raise SlackError("no_text")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    if blocks is not None:
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        errors = validate_blocks(blocks, surface="message")
        if errors:
            raise SlackError(
                "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
            )
    if attachments is not None and not isinstance(attachments, list):
        raise SlackError("invalid_attachments")


class SlackApi:
    """Implements each supported Web API method against a SlackState."""

    def __init__(self, state: SlackState, upload_base: str) -> None:
        self.state = state
        self.upload_base = upload_base
        self.handlers: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "views.open": self.views_open,
            "views.push": self.views_push,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
            "users.info": self.users_info,
            "usergroups.users.list": self.usergroups_users_list,
            "conversations.info": self.conversations_info,
            "conversations.join": self.conversations_join,
            "files.getUploadURLExternal": self.files_get_upload_url_external,
            "files.completeUploadExternal": self.files_complete_upload_external,
        }

    def call(self, method: str, params: JSON) -> JSON:
        handler = self.handlers.get(method)
        if handler is None:
            raise SlackError("unknown_method", req_method=method)
        return handler(params)

    # -- auth / directory ---------------------------------------------------------------------------

    def auth_test(self, params: JSON) -> JSON:
        return {
            "ok": True,
            "url": f"https://{identity.TEAM_DOMAIN}.slack.com/",
            "team": identity.TEAM_NAME,
            "user": identity.BOT_USER_NAME,
            "team_id": identity.TEAM_ID,
            "user_id": identity.BOT_USER_ID,
            "bot_id": identity.BOT_ID,
            "is_enterprise_install": False,
        }

    def users_info(self, params: JSON) -> JSON:
        return {"ok": True, "user": copy.deepcopy(self.state.user(params.get("user")))}

    def usergroups_users_list(self, params: JSON) -> JSON:
        group = params.get("usergroup")
        if not group:
            raise invalid_arguments("missing required field: usergroup")
        if group not in self.state.usergroups:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(self.state.usergroups[group])}

    def conversations_info(self, params: JSON) -> JSON:
        return {"ok": True, "channel": copy.deepcopy(self.state.channel(params.get("channel")))}

    def conversations_join(self, params: JSON) -> JSON:
        channel = self.state.channel(params.get("channel"))
        if channel["is_im"]:
            raise SlackError("method_not_supported_for_channel_type")
        if channel["is_archived"]:
            raise SlackError("is_archived")
        response: JSON = {"ok": True, "channel": channel}
        if channel["is_member"]:
            response["warning"] = "already_in_channel"
            response["response_metadata"] = {"warnings": ["already_in_channel"]}
        channel["is_member"] = True
        return copy.deepcopy(response)

    # -- chat ---------------------------------------------------------------------------------------

    def chat_post_message(self, params: JSON) -> JSON:
        channel = self.state.writable_channel(params.get("channel"))
        check_content(params)
        message = _bot_message(self.state.next_ts(), params)
        self.state.append_message(channel["id"], message)
        return {"ok": True, "channel": channel["id"], "ts": message["ts"], "message": copy.deepcopy(message)}

    def chat_update(self, params: JSON) -> JSON:
        channel = self.state.channel(params.get("channel"))
        if not params.get("ts"):
            raise invalid_arguments("missing required field: ts")
        message = self.state.find_message(channel["id"], params["ts"])
        if message.get("bot_id") != identity.BOT_ID:
            raise SlackError("cant_update_message")
        check_content(params)
        # Omitted blocks/attachments keep the previous ones; an empty array removes them.
        message["text"] = params.get("text") or ""
        for key in ("blocks", "attachments"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": identity.BOT_USER_ID, "ts": self.state.next_ts()}
        return {
            "ok": True,
            "channel": channel["id"],
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def chat_post_ephemeral(self, params: JSON) -> JSON:
        channel = self.state.writable_channel(params.get("channel"))
        user = params.get("user")
        if not user:
            raise invalid_arguments("missing required field: user")
        self.state.user(user)
        check_content(params)
        message = {**_bot_message(self.state.next_ts(), params), "channel": channel["id"], "to_user": user}
        self.state.ephemerals.append(message)
        return {"ok": True, "message_ts": message["ts"]}

    def chat_get_permalink(self, params: JSON) -> JSON:
        channel = self.state.channel(params.get("channel"))
        message = self.state.find_message(channel["id"], params.get("message_ts"))
        link = f"https://{identity.TEAM_DOMAIN}.slack.com/archives/{channel['id']}/p{message['ts'].replace('.', '')}"
        if message.get("thread_ts") and message["thread_ts"] != message["ts"]:
            link += f"?thread_ts={message['thread_ts']}&cid={channel['id']}"
        return {"ok": True, "channel": channel["id"], "permalink": link}

    # -- views --------------------------------------------------------------------------------------

    def views_open(self, params: JSON) -> JSON:
        view = self._checked_view(params, kind="modal")
        self._exchange_trigger(params)
        return {"ok": True, "view": copy.deepcopy(self._store_view(view, previous=None))}

    def views_push(self, params: JSON) -> JSON:
        view = self._checked_view(params, kind="modal")
        self._exchange_trigger(params)
        return {"ok": True, "view": copy.deepcopy(self._store_view(view, previous=None))}

    def views_update(self, params: JSON) -> JSON:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if not view_id and not external_id:
            raise invalid_arguments("either view_id or external_id is required")
        current = self._find_view(view_id, external_id)
        view = self._checked_view(params, kind=current["type"])
        self._check_hash(current, params.get("hash"))
        return {"ok": True, "view": copy.deepcopy(self._store_view(view, previous=current))}

    def views_publish(self, params: JSON) -> JSON:
        user_id = params.get("user_id")
        if not user_id:
            raise invalid_arguments("missing required field: user_id")
        self.state.user(user_id)
        view = self._checked_view(params, kind="home")
        current = self.state.views.get(self.state.home_views.get(user_id, ""))
        if current is not None:
            self._check_hash(current, params.get("hash"))
        stored = self._store_view(view, previous=current)
        self.state.home_views[user_id] = stored["id"]
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _checked_view(self, params: JSON, *, kind: str) -> JSON:
        view = params.get("view")
        if view is None:
            raise invalid_arguments("missing required field: view")
        if not isinstance(view, dict):
            raise invalid_arguments("view must be a JSON object")
        errors = validate_view(view)
        if not errors and view.get("type") != kind:
            errors = [f"type must be {kind!r} for this method [json-pointer:/view/type]"]
        if errors:
            # Slack answers bad views with invalid_arguments; `errors` is our addition for readable asserts.
            raise SlackError(
                "invalid_arguments", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
            )
        return view

    def _exchange_trigger(self, params: JSON) -> None:
        trigger = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger:
            raise invalid_arguments("missing required field: trigger_id")
        if trigger in self.state.expired_triggers:
            raise SlackError("expired_trigger_id")
        if trigger in self.state.used_triggers:
            raise SlackError("exchanged_trigger_id")
        self.state.used_triggers.add(trigger)

    def _find_view(self, view_id: Any, external_id: Any) -> JSON:
        for view in self.state.views.values():
            if (view_id and view["id"] == view_id) or (external_id and view.get("external_id") == external_id):
                return view
        raise SlackError("not_found")

    @staticmethod
    def _check_hash(current: JSON, sent: Any) -> None:
        if sent and sent != current["hash"]:
            raise SlackError("hash_conflict")

    def _store_view(self, view: JSON, *, previous: JSON | None) -> JSON:
        external_id = view.get("external_id") or (previous or {}).get("external_id") or ""
        clash = [v for v in self.state.views.values() if external_id and v.get("external_id") == external_id]
        if any(previous is None or v["id"] != previous["id"] for v in clash):
            raise SlackError("duplicate_external_id")
        view_id = previous["id"] if previous else self.state.new_id("V")
        stored = {
            "id": view_id,
            "team_id": identity.TEAM_ID,
            "app_id": identity.APP_ID,
            "bot_id": identity.BOT_ID,
            "app_installed_team_id": identity.TEAM_ID,
            "close": None,
            "submit": None,
            "private_metadata": "",
            "callback_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            **copy.deepcopy(view),
            "external_id": external_id,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "previous_view_id": None,
        }
        self.state.views[view_id] = stored
        return stored

    # -- files --------------------------------------------------------------------------------------

    def files_get_upload_url_external(self, params: JSON) -> JSON:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length in (None, ""):
            raise invalid_arguments("filename and length are required")
        try:
            size = int(length)
        except (TypeError, ValueError):
            raise invalid_arguments("length must be an integer") from None
        if size <= 0:
            raise invalid_arguments("length must be a positive number of bytes")
        file_id = self.state.new_id("F")
        key = secrets.token_hex(8)
        alt_txt = params.get("alt_txt") or None
        self.state.files[file_id] = FakeFile(file_id, str(filename), size, key, int(time.time()), alt_txt=alt_txt)
        return {"ok": True, "upload_url": f"{self.upload_base}{key}", "file_id": file_id}

    def receive_upload(self, key: str, content: bytes) -> FakeFile | None:
        file = next((f for f in self.state.files.values() if f.upload_key == key), None)
        if file is not None:
            file.content = content
        return file

    def files_complete_upload_external(self, params: JSON) -> JSON:
        entries = self._file_entries(params.get("files"))
        targets = self._share_targets(params)
        self._check_thread(params, targets)
        files = []
        for entry in entries:
            file = self.state.files.get(entry.get("id", ""))
            if file is None or file.content is None:
                raise SlackError("file_not_found")
            if len(file.content) != file.length:
                raise invalid_arguments(f"{file.id}: {len(file.content)} bytes uploaded, {file.length} announced")
            file.title = entry.get("title") or file.filename
            file.thread_ts = params.get("thread_ts") or None
            files.append(file)
        for channel_id in targets:
            self._share(channel_id, files, params)
        return {"ok": True, "files": [f.as_json() for f in files]}

    @staticmethod
    def _file_entries(raw: Any) -> list[JSON]:
        entries = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise invalid_arguments("files must be a non-empty JSON array of {id, title}")
        return entries

    def _share_targets(self, params: JSON) -> list[str]:
        refs = [params["channel_id"]] if params.get("channel_id") else []
        refs += [c for c in str(params.get("channels") or "").split(",") if c]
        return [self.state.writable_channel(ref)["id"] for ref in refs]

    def _check_thread(self, params: JSON, targets: list[str]) -> None:
        """thread_ts must name a top-level message of the one channel shared to (Slack's documented rule)."""
        thread_ts = params.get("thread_ts")
        if not thread_ts:
            return
        if len(targets) != 1:
            raise invalid_arguments("thread_ts needs exactly one channel (channel_id)")
        parent = self.state.find_message(targets[0], thread_ts)
        if parent.get("thread_ts") not in (None, parent["ts"]):
            raise invalid_arguments("thread_ts must be the parent message's ts, not a reply's")

    def _share(self, channel_id: str, files: list[FakeFile], params: JSON) -> None:
        message = _bot_message(self.state.next_ts(), {"text": params.get("initial_comment") or ""})
        message.update(files=[f.as_json() for f in files], upload=True)
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.state.append_message(channel_id, message)
        for file in files:
            file.channels.append(channel_id)
