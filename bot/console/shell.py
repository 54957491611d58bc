"""``chaosbot shell``: the bot's commands and flows in a terminal, with no Slack workspace.

The shell builds the same runtime as ``serve`` (same handlers, same Block Kit) around a
``ConsoleSurface`` that prints messages, modals and the App Home as text. Buttons and form
fields are chosen by number or name and dispatched with the payload Slack would send.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot.catalogue.service import CatalogueError
from bot.console import forms
from bot.console.render import (
    Block,
    Button,
    initial_state,
    render_home,
    render_message,
    render_modal,
    text_of,
)
from bot.errors import ConfigurationError, DomainError
from bot.interface.handlers import Handlers
from bot.interface.kit import Message
from bot.interface.metadata import RunRef
from bot.interface.render import NameRenderer
from bot.interface.surface import Request
from bot.logs import TextFormatter, configure_logging
from bot.policy.service import PolicyError
from bot.retro import flows as retro_flows
from bot.runs.models import RAN
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings, load_settings
from bot.vocabulary import parse_run_label, run_label
from storage.db import Database, NotMigratedError, redact_url

CHANNEL = "console"
HELP = """Commands:
  /chaos …              run a chaosbot command (try /chaos help)
  as USER               act as someone else (demo users: oliver, rita, sam, stella, sid, eve)
  click N               press button N of the latest message that shows buttons
  click LABEL [RUN-n]   press a button by its label, on the run's message if given
  home                  your App Home
  messages              every message in the channel, with its thread
  show RUN-n            one run's message and its thread
  wait RUN-n [SECONDS]  wait (up to 120 s, or SECONDS) until the run has ended
  help · quit
In a form:  set FIELD VALUE (field by number or name) · submit · cancel · show"""
Reader = Callable[[str], "str | None"]
MAX_WAIT_SECONDS = 120.0
FORM_HELP = "A form is open: set FIELD VALUE, submit or cancel it first (show prints it again)."


# -- the surface ------------------------------------------------------------------------------------


@dataclass
class Posted:
    """A channel message the console keeps, so its buttons stay clickable."""

    channel: str
    ts: str
    message: Message
    thread_ts: str | None = None
    replies: list[str] = field(default_factory=list)


@dataclass
class Shown:
    """The buttons on something the person can see, and where a click on them comes from."""

    buttons: list[Button]
    channel: str | None


@dataclass
class OpenForm:
    """A modal being filled in: its view and its ``state.values``, exactly as Slack keeps them."""

    view: Block
    user: str
    values: dict[str, dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return text_of(self.view.get("title"))


class ConsoleSurface:
    """A Surface that prints to a terminal and remembers every message by its ts."""

    def __init__(
        self,
        out: TextIO,
        zone: ZoneInfo,
        *,
        user: str = "oliver",
        color: bool = False,
        names: dict[str, str] | None = None,
    ) -> None:
        """``names``: the console's user directory (user id → display name); ids name themselves otherwise."""
        self.renderer = NameRenderer(names or {})
        self.out = out
        self.zone = zone
        self.user = user
        self.color = color
        self.messages: dict[str, Posted] = {}
        self.latest: Shown | None = None
        self.home_buttons: list[Button] = []
        self.form: OpenForm | None = None
        self._epoch = int(time.time())
        self._counter = itertools.count(1)
        self._lock = threading.RLock()

    # Surface protocol

    def ephemeral(self, channel: str | None, user: str, message: Message) -> None:
        """Print a message only ``user`` would see."""
        with self._lock:
            who = "only you" if user == self.user else f"only @{user}"
            rendered = render_message(message.text, message.blocks, color=self.color)
            self._remember(rendered.buttons, channel)
            self.say(_hang(f"({who}) ", rendered.text))

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> tuple[str, str]:
        """Print a channel message (or a thread reply under its parent) and return its (channel, ts)."""
        with self._lock:
            ts = f"{self._epoch}.{next(self._counter):06d}"
            self.messages[ts] = Posted(channel, ts, message, thread_ts)
            parent = self.messages.get(thread_ts or "")
            if parent is not None:
                parent.replies.append(ts)
                self.say(self._reply_text(parent, self.messages[ts]))
            else:
                self.say(f"\n── {channel} · ts {ts} ──")
                self.say(self._show(message, channel))
            return channel, ts

    def update(self, channel: str, ts: str, message: Message) -> None:
        """Print that a message changed, then the message as it is now."""
        with self._lock:
            posted = self.messages.get(ts)
            if posted is None:
                posted = self.messages[ts] = Posted(channel, ts, message)
            posted.message = message
            self.say(f"\n↻ {title_of(message)} updated ({channel} · ts {ts})")
            self.say(self._show(message, channel))

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Enter form mode: the shell takes ``set``/``submit``/``cancel`` until the form closes."""
        with self._lock:
            self.form = OpenForm(view=view, user=self.user, values=initial_state(view))
            self.say(self.form_text())

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Print the App Home tab of ``user``."""
        with self._lock:
            rendered = render_home(view, color=self.color)
            self.home_buttons = rendered.buttons
            self._remember(rendered.buttons, None)
            self.say(f"\n── App Home of @{user} ──")
            self.say(rendered.text)

    # helpers the shell uses

    def say(self, text: str) -> None:
        """Write lines to the terminal, in order even when the engine reports from another thread."""
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def form_text(self) -> str:
        """The open form with its fields numbered and their current values."""
        assert self.form is not None
        form = self.form
        return render_modal(form.view, form.values, self.zone, errors=form.errors, color=self.color)

    def thread_text(self, posted: Posted) -> str:
        """A message and its thread replies, as ``messages`` and ``show`` print them."""
        lines = [f"── {posted.channel} · ts {posted.ts} ──", self._show(posted.message, posted.channel)]
        lines += [self._reply_text(posted, self.messages[ts]) for ts in posted.replies]
        return "\n".join(lines)

    def top_level(self) -> list[Posted]:
        """Channel messages that are not thread replies, oldest first."""
        return [p for p in self.messages.values() if p.thread_ts is None or p.thread_ts not in self.messages]

    def find_run(self, label: str) -> Posted | None:
        """The latest channel message whose title is ``label`` (``RUN-4``)."""
        wanted = label.upper()
        for posted in reversed(self.top_level()):
            if title_of(posted.message).upper() == wanted:
                return posted
        return None

    def buttons_everywhere(self) -> Iterator[tuple[Button, str | None]]:
        """Every clickable button, newest first: the latest shown, the channel's messages, the Home tab."""
        if self.latest is not None:
            yield from ((b, self.latest.channel) for b in self.latest.buttons)
        for posted in reversed(list(self.messages.values())):
            rendered = render_message(posted.message.text, posted.message.blocks)
            yield from ((b, posted.channel) for b in rendered.buttons)
        yield from ((b, None) for b in self.home_buttons)

    def _show(self, message: Message, channel: str | None) -> str:
        rendered = render_message(message.text, message.blocks, color=self.color)
        self._remember(rendered.buttons, channel)
        return rendered.text

    def _remember(self, buttons: list[Button], channel: str | None) -> None:
        if buttons:
            self.latest = Shown(buttons, channel)

    def _reply_text(self, parent: Posted, reply: Posted) -> str:
        rendered = render_message(reply.message.text, reply.message.blocks, color=self.color)
        return _hang(f"    ↳ {title_of(parent.message)} thread: ", rendered.text)


def title_of(message: Message) -> str:
    """A short name for a message: its header up to `` · `` (``RUN-4``), else the start of its text."""
    for block in message.blocks:
        if block.get("type") == "header":
            return text_of(block.get("text")).split(" · ")[0]
    return message.text.split("\n")[0][:40]


def _hang(prefix: str, text: str) -> str:
    """``prefix`` before the first line, the rest indented to line up under it."""
    pad = " " * len(prefix)
    first, *rest = text.split("\n")
    return "\n".join([prefix + first, *(pad + line if line else "" for line in rest)])


# -- the shell --------------------------------------------------------------------------------------


class Shell:
    """The read-eval-print loop: one line at a time, dispatched to the shared handlers."""

    def __init__(self, handlers: Handlers, surface: ConsoleSurface, *, user: str, read: Reader) -> None:
        self.handlers = handlers
        self.surface = surface
        self.surface.user = user
        self.read = read
        self._triggers = itertools.count(1)

    @property
    def user(self) -> str:
        return self.surface.user

    def prompt(self) -> str:
        """``oliver> ``, or ``oliver [Plan CE-01]> `` while a form is open."""
        form = self.surface.form
        return f"{self.user} [{form.title}]> " if form else f"{self.user}> "

    def run(self) -> int:
        """Read and run lines until ``quit`` or the end of the input."""
        self.surface.say(f"chaosbot shell, as @{self.user}. Type help for the commands.")
        while True:
            line = self.read(self.prompt())
            if line is None or not self.handle(line):
                return 0

    def handle(self, line: str) -> bool:
        """Run one line; False means quit. Nothing unexpected escapes: the shell continues."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            return self._dispatch(line)
        except Exception as exc:
            logging.getLogger(__name__).debug("shell line failed", exc_info=True)
            self.surface.say(f"! That failed unexpectedly ({type(exc).__name__}: {exc}). The shell continues.")
            return True

    def _dispatch(self, line: str) -> bool:
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("quit", "exit", "q"):
            return False
        if word in ("help", "?"):
            self.surface.say(HELP)
            return True
        if self.surface.form is not None:
            self._form_command(word, rest)
            return True
        command = self._commands().get(word)
        if command is None:
            self.surface.say(f"Unknown command {word!r}. Type help for the commands.")
        else:
            command(rest)
        return True

    def _commands(self) -> dict[str, Callable[[str], None]]:
        return {
            "/chaos": self.chaos,
            "chaos": self.chaos,
            "as": self.switch_user,
            "click": self.click,
            "home": lambda _rest: self.home(),
            "messages": lambda _rest: self.messages(),
            "show": self.show,
            "wait": self.wait,
        }

    def _trigger(self) -> str:
        return f"console-trigger-{next(self._triggers)}"

    # commands

    def chaos(self, text: str) -> None:
        """``/chaos …`` exactly as the slash command would arrive from Slack."""
        request = Request(user=self.user, channel=CHANNEL, trigger_id=self._trigger())
        self.handlers.command(request, text)

    def wait(self, rest: str) -> None:
        """``wait RUN-n [SECONDS]``: let the engine work (it runs in the background) until the run ends."""
        words = rest.split()
        try:
            run_id = parse_run_label(words[0]) if words else None
            limit = min(float(words[1]), MAX_WAIT_SECONDS) if len(words) > 1 else MAX_WAIT_SECONDS
        except ValueError:
            run_id = None
        if run_id is None:
            self.surface.say("Use: wait RUN-n [SECONDS]")
            return
        deadline = time.monotonic() + limit
        # Until the run has ended and the engine has let go of it (its last messages are out by then).
        while time.monotonic() < deadline and (
            not self.handlers.core.queries.run(run_id).run_state.is_final or run_id in self.handlers.engine.running()
        ):
            time.sleep(0.2)
        # ...and its retrospective is in its thread (posted right after the end, on another thread).
        while time.monotonic() < deadline and self._retrospective_due(run_id):
            time.sleep(0.2)
        state = self.handlers.core.queries.run(run_id).run_state
        label = run_label(run_id)
        self.surface.say(f"{label} is {state.value}." if state.is_final else f"{label} is still {state.value}.")

    def _retrospective_due(self, run_id: int) -> bool:
        state = self.handlers.core.queries.run(run_id).run_state
        ran = state in RAN
        return ran and retro_flows.posted(self.handlers.core.db, run_id) is None

    def switch_user(self, rest: str) -> None:
        """``as USER``: who the next lines act as."""
        user = rest.split()[0].lstrip("@") if rest else ""
        if not user:
            self.surface.say(f"You are @{self.user}. Use: as USER")
            return
        self.surface.user = user
        self.surface.say(f"You are now @{user}.")

    def home(self) -> None:
        """The App Home tab, rendered as ``app_home_opened`` would publish it."""
        user = self.user
        self.handlers.guarded(Request(user=user), lambda: self.handlers.home(user))

    def messages(self) -> None:
        """Every channel message with its thread."""
        posted = self.surface.top_level()
        if not posted:
            self.surface.say("No messages in the channel yet.")
        for item in posted:
            self.surface.say(self.surface.thread_text(item))

    def show(self, rest: str) -> None:
        """One run's message and thread; a run from an earlier session is shown through ``/chaos status``."""
        if not rest:
            self.surface.say("Use: show RUN-n")
            return
        posted = self.surface.find_run(rest.split()[0])
        if posted is None:
            self.chaos(f"status {rest.split()[0]}")
            return
        self.surface.say(self.surface.thread_text(posted))

    def click(self, rest: str) -> None:
        """Press a button by number or label, sending the action id and value Slack would send."""
        found = self._find_button(rest)
        if found is None:
            return
        button, channel = found
        if button.confirm and not self._confirmed(button.confirm):
            self.surface.say("Not pressed.")
            return
        self.surface.say(f"→ @{self.user} pressed {button.label}")
        request = Request(user=self.user, channel=channel, trigger_id=self._trigger())
        self.handlers.action(request, button.action_id, button.value)

    def _find_button(self, rest: str) -> tuple[Button, str | None] | None:
        words = rest.replace("[", " ").replace("]", " ").split()
        if not words:
            self.surface.say("Use: click N, or click LABEL [RUN-n]")
            return None
        latest = self.surface.latest
        if len(words) == 1 and words[0].isdigit():
            number = int(words[0])
            if latest is None or not 1 <= number <= len(latest.buttons):
                self.surface.say(f"No button {number} on the latest message with buttons.")
                return None
            return latest.buttons[number - 1], latest.channel
        run = _run_number(words[-1]) if len(words) > 1 else None
        label = " ".join(words[:-1] if run is not None else words).lower()
        for button, channel in self.surface.buttons_everywhere():
            if button.label.lower() == label and (run is None or _button_run(button) == run):
                return button, channel
        where = f" on {run_label(run)}" if run is not None else ""
        self.surface.say(f"No {label!r} button{where} to press. (show RUN-n prints a run's buttons.)")
        return None

    def _confirmed(self, confirm: Block) -> bool:
        title, text = text_of(confirm.get("title")), text_of(confirm.get("text"))
        yes = text_of(confirm.get("confirm")) or "Yes"
        self.surface.say(f"? {title} {text}")
        answer = self.read(f"{yes}? [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")

    # form mode

    def _form_command(self, word: str, rest: str) -> None:
        form = self.surface.form
        assert form is not None
        if word == "set":
            self._set(form, rest)
        elif word == "submit":
            self._submit(form)
        elif word in ("cancel", "close"):
            self.surface.form = None
            self.surface.say(f"Closed the form {form.title!r} without submitting.")
        elif word == "show":
            self.surface.say(self.surface.form_text())
        else:
            self.surface.say(FORM_HELP)

    def _set(self, form: OpenForm, rest: str) -> None:
        key, _, raw = rest.partition(" ")
        if not key:
            self.surface.say("Use: set FIELD VALUE (FIELD by number or block id)")
            return
        try:
            item = forms.find_field(form.view, key)
            form.values[item.block_id] = {item.action_id: forms.field_state(item, raw, self.surface.zone)}
        except forms.FormError as exc:
            self.surface.say(f"! {exc}")
            return
        form.errors.pop(item.block_id, None)
        self.surface.say(self.surface.form_text())

    def _submit(self, form: OpenForm) -> None:
        missing = forms.missing_required(form.view, form.values)
        if missing:
            form.errors = missing
            self.surface.say(self.surface.form_text())
            return
        request = Request(user=form.user, trigger_id=self._trigger())
        view = form.view
        values = copy.deepcopy(form.values)
        result = self.handlers.submit(request, view.get("callback_id", ""), values, view.get("private_metadata", ""))
        if result.errors:
            form.errors = dict(result.errors)
            self.surface.say("The form has errors:")
            self.surface.say(self.surface.form_text())
            return
        if self.surface.form is form:
            self.surface.form = None
        self.surface.say(f"✓ Submitted {form.title!r}.")
        if result.then is not None:
            result.then()


def _run_number(word: str) -> int | None:
    """A run named as ``RUN-n`` (a bare number would be a button number)."""
    return parse_run_label(word) if word.upper().startswith("RUN") else None


def _button_run(button: Button) -> int | None:
    """The run a button acts on, from its ``RunRef`` value."""
    try:
        return RunRef.load(button.value).run
    except DomainError:
        return None


# -- input ------------------------------------------------------------------------------------------


def terminal_reader() -> Reader:
    """Read from the terminal with line editing where available."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  # imported for its side effect: history and editing in input()

    def read(prompt: str) -> str | None:
        try:
            return input(prompt)
        except EOFError:
            print()
            return None
        except KeyboardInterrupt:
            print()
            return ""

    return read


def echo_reader(lines: Iterator[str], out: TextIO) -> Reader:
    """Read from a script or a pipe, echoing each line after its prompt so the transcript reads naturally."""

    def read(prompt: str) -> str | None:
        for raw in lines:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#") or not line.strip():
                out.write(line + "\n")
                continue
            out.write(prompt + line + "\n")
            out.flush()
            return line
        return None

    return read


# -- start ------------------------------------------------------------------------------------------


class _ShortFormatter(TextFormatter):
    """Log lines without stack traces: the console shows people a short message, never a traceback."""

    def formatException(self, ei: Any) -> str:  # logging.Formatter's name
        return f"  ({ei[0].__name__}: {ei[1]})" if ei and ei[0] else ""


def configure_console_logging() -> None:
    """Text logs at WARNING on stderr, with exceptions shortened to one line."""
    configure_logging("text", "WARNING")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_ShortFormatter())


def prepare_database(settings: Settings, out: TextIO) -> None:
    """Migrate an embedded SQLite database on first use; an unmigrated PostgreSQL raises ``NotMigratedError``."""
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        db.check_migrated()
        return
    except NotMigratedError:
        if db.dialect != "sqlite":
            raise
    finally:
        db.dispose()
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    configure_console_logging()  # in case the migration run touched the logging setup
    out.write(f"Set up the embedded database at {redact_url(settings.database_url)} (migrated to the latest schema).\n")


def _reader(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> Reader:
    script = getattr(args, "script", None)
    if script is not None:
        return echo_reader(iter(script.read_text(encoding="utf-8").splitlines()), out)
    if stdin.isatty():
        return terminal_reader()
    return echo_reader(iter(stdin), out)


def _use_color(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def main(args: argparse.Namespace, *, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``chaosbot shell``: returns the process exit code."""
    if not getattr(args, "demo_target", False):
        return _shell(args, stdin=stdin, out=out)
    from bot.demo.target import CATALOGUE, demo_target

    with demo_target() as target:
        os.environ.setdefault("CHAOSBOT_CATALOGUE", str(CATALOGUE))
        cache = f", its cache on {target.redis_url}" if target.redis_url else ""
        print(f"Demo portal on {target.portal_url}{cache}")
        return _shell(args, stdin=stdin, out=out)


def _shell(args: argparse.Namespace, *, stdin: TextIO | None, out: TextIO | None) -> int:
    stdin, out = stdin or sys.stdin, out or sys.stdout
    settings = load_settings()
    configure_console_logging()
    try:
        read = _reader(args, stdin, out)
    except OSError as exc:
        print(f"chaosbot: cannot read the script: {exc}", file=sys.stderr)
        return 1
    surface = ConsoleSurface(out, settings.zone, user=args.user, color=_use_color(out) and args.script is None)
    try:
        runtime = _start(settings, surface)
    except (ConfigurationError, NotMigratedError, CatalogueError, PolicyError):
        raise  # the CLI prints these as they are
    except Exception as exc:
        print(f"chaosbot: the shell could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        code = Shell(runtime.handlers, surface, user=args.user, read=read).run()
        _warn_still_running(runtime.engine.running(), surface)
        return code
    finally:
        runtime.close()


def _start(settings: Settings, surface: ConsoleSurface) -> Runtime:
    """The database ready, the shared runtime built around the console, orphaned runs recovered."""
    prepare_database(settings, surface.out)
    runtime = build_runtime(settings, surface)
    recovered = runtime.recover_orphans()
    if recovered:
        surface.say(f"Reverted runs left behind by a lost process: {', '.join(run_label(r) for r in recovered)}")
    runtime.start_schedule()  # notices and automatic starts at their moment, as in Slack
    return runtime


def _warn_still_running(run_ids: list[int], surface: ConsoleSurface) -> None:
    """Quitting stops watching without reverting: say so, and how the fault gets reverted."""
    if run_ids:
        labels = ", ".join(run_label(r) for r in run_ids)
        surface.say(
            f"Still running: {labels}. Nobody watches it once the shell exits; the next chaosbot process "
            "to start reverts and aborts it (the dead man's switch). Use /chaos abort to stop it now."
        )
