"""A local Socket Mode peer: Slack's side of Socket Mode, as documented, over a real WebSocket.

The protocol (https://api.slack.com/apis/socket-mode):

1. The app calls ``apps.connections.open`` with its app-level token (``xapp-``); Slack answers a one-time
   WebSocket URL. Here the fake Web API asks ``SocketModePeer.issue_url`` for it (``ws://``, a fresh ticket).
2. On connecting, the peer sends ``{"type": "hello", "num_connections": …, "connection_info": {"app_id": …},
   "debug_info": {…}}``.
3. Each delivery is an envelope ``{"envelope_id", "type": "events_api" | "slash_commands" | "interactive",
   "payload", "accepts_response_payload", "retry_attempt", "retry_reason"}``; the app acknowledges it by
   sending ``{"envelope_id", "payload"?}`` back on the socket (the ``payload`` is what an HTTP ack's body
   would be, e.g. ``response_action: errors``), within 3 seconds.
4. The peer may send ``{"type": "disconnect", "reason": "refresh_requested" | "warning" | "link_disabled"}``;
   the app then opens a new connection (``apps.connections.open`` again) and closes the old one.

It runs websockets' threaded server on 127.0.0.1 (a free port); ``send`` delivers an envelope on the newest
connection and ``ack`` waits for its acknowledgement.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakeslack import identity

JSON = dict[str, Any]
ENVELOPE_TYPES = ("events_api", "slash_commands", "interactive")


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: JSON | None
    sent_at: float
    acked_at: float

    @property
    def latency(self) -> float:
        return self.acked_at - self.sent_at


@dataclass
class Session:
    """One WebSocket connection the app opened with a ticket."""

    ticket: str
    connection: ServerConnection
    opened_at: float
    closed_at: float | None = None
    received: list[JSON] = field(default_factory=list)


class SocketModePeer:
    def __init__(self, app_id: str = identity.APP_ID) -> None:
        self.app_id = app_id
        self.sessions: list[Session] = []
        self.refused: list[str] = []  # connections with an unknown or reused ticket
        self._tickets: set[str] = set()
        self._sent: dict[str, float] = {}
        self._acks: dict[str, Ack] = {}
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        self._server: Server = serve(self._session, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="socket-mode-peer", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    # -- apps.connections.open ---------------------------------------------------------------------------

    def issue_url(self) -> str:
        """A one-time URL, as ``apps.connections.open`` returns it."""
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- the connections -----------------------------------------------------------------------------------

    def _session(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        ticket = parse_qs(urlsplit(path).query).get("ticket", [""])[0]
        with self._changed:
            if ticket not in self._tickets:
                self.refused.append(ticket)
                connection.close(code=1008, reason="invalid ticket")
                return
            self._tickets.discard(ticket)  # one connection per ticket
            session = Session(ticket, connection, time.monotonic())
            self.sessions.append(session)
            live = sum(1 for s in self.sessions if s.closed_at is None)
        self._send_on(session, self._hello(live))
        with self._changed:
            self._changed.notify_all()
        try:
            for raw in connection:
                self._received(session, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                session.closed_at = time.monotonic()
                self._changed.notify_all()

    def _hello(self, live: int) -> JSON:
        return {
            "type": "hello",
            "num_connections": live,
            "debug_info": {"host": "applink-local-peer", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }

    def _received(self, session: Session, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        with self._changed:
            session.received.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str) and envelope_id in self._sent and envelope_id not in self._acks:
                payload = message.get("payload")
                self._acks[envelope_id] = Ack(
                    envelope_id, payload if isinstance(payload, dict) else None, self._sent[envelope_id], time.time()
                )
            self._changed.notify_all()

    def _send_on(self, session: Session, message: JSON) -> None:
        with self._send_lock:
            session.connection.send(json.dumps(message))

    # -- what tests do -------------------------------------------------------------------------------------

    def current(self, timeout: float = 10.0) -> Session:
        """The newest open connection, waiting for the app to open one."""
        with self._changed:
            if not self._changed.wait_for(self._newest_open, timeout=timeout):
                raise AssertionError(f"the app opened no Socket Mode connection within {timeout} s")
            newest = self._newest_open()
            assert newest is not None
            return newest

    def _newest_open(self) -> Session | None:
        return next((s for s in reversed(self.sessions) if s.closed_at is None), None)

    def send(self, kind: str, payload: JSON, *, accepts_response_payload: bool = False, retry_attempt: int = 0) -> str:
        """Deliver an envelope on the newest connection; returns its ``envelope_id``."""
        assert kind in ENVELOPE_TYPES, kind
        envelope_id = str(uuid.uuid4())
        envelope: JSON = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
        session = self.current()
        with self._changed:
            self._sent[envelope_id] = time.time()
        self._send_on(session, envelope)
        return envelope_id

    def acks(self) -> list[Ack]:
        with self._changed:
            return list(self._acks.values())

    def ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self._acks, timeout=timeout):
                raise AssertionError(f"envelope {envelope_id} was not acknowledged within {timeout} s")
            return self._acks[envelope_id]

    def disconnect(self, reason: str = "refresh_requested", timeout: float = 10.0) -> Session:
        """Ask the app to reconnect; returns the new connection once it is open (the old one is closed by the app)."""
        old = self.current()
        self._send_on(old, {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-local-peer"}})
        with self._changed:
            if not self._changed.wait_for(lambda: (s := self._newest_open()) is not None and s is not old, timeout):
                raise AssertionError(f"the app did not reconnect within {timeout} s of a disconnect")
            newest = self._newest_open()
            assert newest is not None
            return newest

    def wait_closed(self, session: Session, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: session.closed_at is not None, timeout=timeout):
                raise AssertionError(f"the connection of ticket {session.ticket} stayed open")
