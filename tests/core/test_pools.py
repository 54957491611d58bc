"""Work after an ack gives way to requests being answered (boundedly); the kill switch's pool never waits."""

from __future__ import annotations

import threading
import time

from bot.pools import Foreground, sleep, worker_pools


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


def test_a_task_waiting_out_slack_gives_its_turn_to_the_next_task() -> None:
    pools = worker_pools(work=1, sleepers=2)
    waiting, other_ran = threading.Event(), threading.Event()

    def waits_out_a_rate_limit() -> None:
        waiting.set()
        sleep(1.0)

    try:
        pools.work(waits_out_a_rate_limit)
        assert waiting.wait(1.0)
        pools.work(other_ran.set)
        assert other_ran.wait(0.5), "the only turn stayed with a task that was sleeping"
    finally:
        pools.close()


def test_only_the_pool_size_runs_at_once_however_many_threads_wait() -> None:
    pools = worker_pools(work=2, sleepers=4)
    running, most, guard = 0, 0, threading.Lock()

    def busy() -> None:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with guard:
            running -= 1

    try:
        for _ in range(12):
            pools.work(busy)
    finally:
        pools.close()
    assert most == 2
