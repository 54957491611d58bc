"""Work after an ack gives way to requests being answered (boundedly); the kill switch's pool never waits."""

from __future__ import annotations

import threading
import time

from bot.pools import Foreground, worker_pools


def test_work_after_an_ack_waits_until_no_request_is_being_answered() -> None:
    pools = worker_pools()
    done = threading.Event()
    try:
        with pools.foreground.answering():
            pools.work(done.set)
            assert not done.wait(0.2), "the reply ran while a request was still being answered"
        assert done.wait(1.0)
    finally:
        pools.close()


def test_the_wait_is_bounded_by_the_patience() -> None:
    foreground = Foreground(patience=0.2)
    with foreground.answering():
        started = time.monotonic()
        foreground.wait_until_quiet()
        waited = time.monotonic() - started
    assert 0.15 <= waited < 1.0


def test_the_kill_switch_pool_never_waits_for_requests() -> None:
    pools = worker_pools()
    aborted = threading.Event()
    try:
        with pools.foreground.answering():
            pools.urgent(aborted.set)
            assert aborted.wait(0.1)
    finally:
        pools.close()
