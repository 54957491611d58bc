"""After ``Outbox.close()`` nothing more is sent, queued or left behind: ``send`` refuses (logged) and no
sender thread starts, even for a message whose first try fails while the outbox closes."""

from __future__ import annotations

import logging
import threading

import pytest

from bot.interface.outbox import Outbox
from bot.interface.surface import DeliveryFailed


def _senders() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "chaosbot-outbox" and thread.is_alive()]


def test_send_after_close_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox()
    outbox.close(deadline_seconds=0.1)
    delivered: list[str] = []
    before = len(_senders())

    with caplog.at_level(logging.WARNING, logger="bot.interface.outbox"):
        accepted = outbox.send("C1/", lambda: delivered.append("late"), "timeline event")

    assert accepted is False
    assert delivered == [] and outbox.waiting == 0
    assert len(_senders()) == before
    assert "outbox is closed: refused a timeline event for C1/" in caplog.text


def test_a_first_try_failing_after_close_starts_no_sender(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox()
    trying, closed = threading.Event(), threading.Event()

    def deliver() -> None:
        trying.set()
        closed.wait(5)
        raise DeliveryFailed("service_unavailable")  # a passing failure: would normally wait in the queue

    with caplog.at_level(logging.ERROR, logger="bot.interface.outbox"):
        caller = threading.Thread(target=lambda: outbox.send("C1/", deliver, "alert"))
        caller.start()
        assert trying.wait(5)
        before = len(_senders())
        outbox.close(deadline_seconds=0.1)
        closed.set()
        caller.join(5)

    assert outbox.waiting == 0
    assert len(_senders()) == before
    assert "alert for C1/ undelivered" in caplog.text


def test_before_close_a_message_is_delivered_at_once() -> None:
    outbox = Outbox()
    delivered: list[str] = []
    assert outbox.send("C1/", lambda: delivered.append("now"))
    assert delivered == ["now"]
    outbox.close(deadline_seconds=0.1)
