"""What every desk's handlers share: the core, the engine, where they talk, one error path (``guarded``), and
the answer a form gives inside the ack (``Submission``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from bot.errors import DomainError
from bot.interface.kit import Message, notice
from bot.interface.publisher import Publisher
from bot.interface.render import Renderer
from bot.interface.surface import DeliveryFailed, Request, Surface
from bot.logs import log_context
from bot.runs.core import RunCore
from bot.runs.models import Run
from bot.runs.transitions import FreezeOverride
from bot.words import Words

log = logging.getLogger(__name__)


class AbortOutcome(Protocol):
    @property
    def run_id(self) -> int: ...
    @property
    def reverted(self) -> bool: ...
    @property
    def detail(self) -> str | Words: ...


class Engine(Protocol):
    def start(
        self,
        actor: str,
        run_id: int,
        *,
        dry_run: bool = False,
        duration: timedelta | None = None,
        override: FreezeOverride | None = None,
    ) -> Run: ...
    def abort(self, actor: str, run_id: int, reason: str = "") -> AbortOutcome: ...
    def abort_all(self, actor: str, reason: str = "") -> Sequence[AbortOutcome]: ...
    def resume(self, actor: str) -> bool: ...
    def running(self) -> list[int]: ...


@dataclass(frozen=True)
class Submission:
    """The answer to a form: field errors to show inline, or work to do after the form closes."""

    errors: dict[str, str] | None = None
    then: Callable[[], None] | None = None


@dataclass(frozen=True)
class Conversation:
    """The parts a handler talks through; ``say`` renders what the core says for this surface."""

    core: RunCore
    engine: Engine
    surface: Surface
    publisher: Publisher

    @property
    def say(self) -> Renderer:
        return self.surface.renderer

    def reply(self, request: Request, message: Message) -> None:
        self.publisher.whisper(request.channel, request.user, message)

    def reply_all(self, request: Request, messages: list[Message]) -> None:
        """An answer too long for one message: its messages, in order."""
        self.publisher.whisper(request.channel, request.user, *messages)

    def tell(self, request: Request, words: Words | str) -> None:
        """A short answer only the person who asked sees."""
        self.reply(request, notice(self.say(words)))

    def announce(self, words: Words) -> None:
        self.publisher.announce(self.say(words))

    def guarded(self, request: Request, work: Callable[[], None]) -> None:
        """Run ``work``; a domain error becomes a message to the person, anything else an apology with an id."""
        try:
            with log_context(user=request.user):
                work()
        except DomainError as exc:
            self.reply(request, notice(f":warning: {self.say(exc.words)}"))
        except DeliveryFailed as exc:
            log.warning("Slack refused a call: %s", exc.reason, extra={"user": request.user})
            self.reply(request, notice(f":warning: {_refused(exc.reason)}"))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("unexpected error %s", error_id, extra={"user": request.user})
            self.reply(request, notice(f"Sorry, that failed on our side. Error id `{error_id}`."))


def _refused(reason: str) -> str:
    if reason == "expired_trigger_id":
        return "Slack's form link expired before I could open the form; run the command again."
    return f"Slack refused that ({reason}). Try again; if it keeps failing, tell the chaosbot admins."
