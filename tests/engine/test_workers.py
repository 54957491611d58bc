"""The engine's thread pools (probes, database reads) stop when their owner closes them: queued work is
cancelled, work in flight is waited for until a deadline, and no new work is taken."""

from __future__ import annotations

import threading
import time

import pytest

from bot.engine.workers import Workers


def test_close_waits_for_work_in_flight_and_cancels_the_queue() -> None:
    workers = Workers(1, "test-workers")
    began, release = threading.Event(), threading.Event()

    def work() -> bool:
        began.set()
        return release.wait(5)

    running = workers.submit(work)
    queued = workers.submit(time.sleep, 0)
    assert began.wait(2)
    threading.Timer(0.1, release.set).start()

    workers.close(deadline_seconds=2)

    assert running.done() and running.result() is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        workers.submit(time.sleep, 0)


def test_close_gives_up_on_work_that_outlives_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    workers = Workers(1, "test-slow")
    began, release = threading.Event(), threading.Event()

    def work() -> None:
        began.set()
        release.wait(5)

    slow = workers.submit(work)
    assert began.wait(2)
    started = time.monotonic()

    workers.close(deadline_seconds=0.1)

    assert time.monotonic() - started < 1
    assert not slow.done()
    assert "test-slow task(s) still running" in caplog.text
    release.set()


def test_map_keeps_the_order_of_its_items() -> None:
    workers = Workers(4, "test-map")
    try:
        assert workers.map(lambda n: n * n, [3, 1, 2]) == [9, 1, 4]
    finally:
        workers.close(deadline_seconds=1)
