"""Uploading a file into a channel or thread with Slack's current flow (``files.upload`` is retired):

1. ``files.getUploadURLExternal`` (filename, length) answers an ``upload_url`` and a ``file_id``;
2. the bytes are POSTed to that URL (pre-signed: no token goes with them);
3. ``files.completeUploadExternal`` (``files=[{id, title}]``, ``channel_id``, ``thread_ts``) shares it.

Failures are logged and answered with ``False``: the caller says in its text that the file is missing.
"""

from __future__ import annotations

import logging

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.interface.kit import Message
from bot.observability import SLACK_API_ERRORS
from bot.slack.client import SlackSurface

log = logging.getLogger(__name__)

UPLOAD_TIMEOUT_SECONDS = 20.0


def upload_file(
    client: WebClient,
    *,
    channel: str,
    content: bytes,
    filename: str,
    title: str,
    thread_ts: str | None = None,
    alt_text: str | None = None,
    http: httpx.Client | None = None,
) -> bool:
    """Upload ``content`` and share it in ``channel`` (in the thread of ``thread_ts``); True when shared."""
    try:
        ticket = client.files_getUploadURLExternal(filename=filename, length=len(content), alt_txt=alt_text)
        file_id, upload_url = str(ticket["file_id"]), str(ticket["upload_url"])
        _send_bytes(upload_url, content, http)
        client.files_completeUploadExternal(
            files=[{"id": file_id, "title": title}], channel_id=channel, thread_ts=thread_ts
        )
    except SlackApiError as exc:
        reason = str(exc.response.get("error", "unknown"))
        SLACK_API_ERRORS.labels("files.upload", reason).inc()
        log.warning("could not upload %s to %s: Slack answered %s", filename, channel, reason)
        return False
    except (httpx.HTTPError, KeyError) as exc:
        log.warning("could not upload %s to %s: %r", filename, channel, exc)
        return False
    return True


def _send_bytes(url: str, content: bytes, http: httpx.Client | None) -> None:
    if http is None:
        response = httpx.post(url, content=content, timeout=UPLOAD_TIMEOUT_SECONDS)
    else:
        response = http.post(url, content=content, timeout=UPLOAD_TIMEOUT_SECONDS)
    response.raise_for_status()


class SlackRetroOutlet:
    """Where a retrospective goes in Slack (a ``bot.retro.flows.RetroPoster``): posts, the chart upload and
    permalinks, over one Web API client."""

    def __init__(self, client: WebClient, http: httpx.Client | None = None) -> None:
        self.client = client
        self.http = http
        self.surface = SlackSurface(client)

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        return self.surface.post(channel, message, thread_ts=thread_ts)

    def update(self, channel: str, ts: str, message: Message) -> None:
        self.surface.update(channel, ts, message)

    def upload(
        self, channel: str, thread_ts: str | None, content: bytes, *, filename: str, title: str, alt_text: str
    ) -> bool:
        return upload_file(
            self.client,
            channel=channel,
            thread_ts=thread_ts,
            content=content,
            filename=filename,
            title=title,
            alt_text=alt_text,
            http=self.http,
        )

    def permalink(self, channel: str, ts: str) -> str | None:
        try:
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except (SlackApiError, KeyError):
            log.warning("no permalink for %s/%s", channel, ts)
            return None
