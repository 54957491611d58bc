"""What a handler can do to the people it talks to. Slack and the console each implement it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.interface.kit import Message
from bot.interface.render import Renderer

Background = Callable[[Callable[[], None]], None]


class DeliveryFailed(Exception):
    """The chat platform refused a message or view; ``reason`` is its error code (e.g. not_in_channel)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # seconds the platform asked us to wait (HTTP 429 Retry-After)


@dataclass(frozen=True)
class Request:
    """Who asked, and from where. ``user`` comes only from a verified payload."""

    user: str
    channel: str | None = None
    trigger_id: str | None = None


class Surface(Protocol):
    @property
    def renderer(self) -> Renderer:
        """How this surface shows people and typed text (Slack mentions, console names)."""

    def ephemeral(self, channel: str | None, user: str, message: Message) -> None:
        """Only ``user`` sees it (a DM when there is no channel, e.g. from App Home)."""

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        """Post and return (channel id, message ts)."""

    def update(self, channel: str, ts: str, message: Message) -> None: ...

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None: ...

    def publish_home(self, user: str, view: dict[str, Any]) -> None: ...
