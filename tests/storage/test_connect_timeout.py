"""A database host that accepts the TCP connection and then says nothing (a silently dropping network, a hung
server) makes a connect give up within seconds, not the operating system's minutes: shutdown and an abort's
record fall back to the spool instead of stalling."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage.db import CONNECT_TIMEOUT_SECONDS, Database


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port that completes the handshake and never answers PostgreSQL's startup message."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()
    for connection in held:
        connection.close()


def test_a_silent_database_host_fails_the_connect_within_the_timeout(silent_host: int) -> None:
    db = Database(f"postgresql+psycopg://chaosbot@127.0.0.1:{silent_host}/chaosbot")
    started = time.monotonic()
    with pytest.raises(OperationalError), db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    took = time.monotonic() - started
    db.dispose()
    assert took < CONNECT_TIMEOUT_SECONDS + 2, f"the connect hung for {took:.1f} s"
