"""After ``Outbox.close()`` nothing more is sent, queued or left behind: ``send`` refuses (logged) and no
sender thread starts, even for a message whose first try fails while the outbox closes."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from bot.interface.outbox import MESSAGE_PENDING, Outbox
from bot.interface.surface import DeliveryFailed
from tests.waiting import wait_until


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


def test_a_message_waiting_for_another_replica_s_post_holds_back_only_its_own_line() -> None:
    """``message_pending`` is about one run's message: the rest of the outbox is not made to wait for it."""
    outbox = Outbox(first_backoff=30.0)
    pending_tries: list[float] = []

    def update_the_card() -> None:
        pending_tries.append(time.monotonic())
        raise DeliveryFailed(MESSAGE_PENDING)  # another replica is still posting that run's first message

    assert outbox.send("C1/111.1", update_the_card, "run message update")
    assert len(pending_tries) == 1 and outbox.waits_for("C1/111.1")

    # Another thread's message waits in its own line (its first one is being sent), then goes by the sender.
    sending, release = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow_first() -> None:
        sending.set()
        release.wait(5)
        delivered.append("first")

    caller = threading.Thread(target=lambda: outbox.send("C1/222.2", slow_first))
    caller.start()
    assert sending.wait(5)
    assert outbox.send("C1/222.2", lambda: delivered.append("second"))
    release.set()
    caller.join(5)

    wait_until(lambda: delivered == ["first", "second"], timeout=5, what="the other thread's second message")
    assert len(pending_tries) == 1  # the held line waits out its own back-off
    outbox.close(deadline_seconds=0.1)


def test_a_held_line_is_tried_again_after_its_back_off() -> None:
    outbox = Outbox(first_backoff=0.1)
    tries: list[str] = []

    def update_the_card() -> None:
        tries.append("try")
        if len(tries) < 3:
            raise DeliveryFailed(MESSAGE_PENDING)

    assert outbox.send("C1/111.1", update_the_card, "run message update")
    wait_until(lambda: outbox.waiting == 0, timeout=5, what="the held update delivered")
    assert tries == ["try", "try", "try"]
    outbox.close(deadline_seconds=0.1)
