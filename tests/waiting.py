"""Waiting on conditions, not on time: a test waits until something holds, or checks that it keeps holding.

No test sleeps for a fixed time longer than half a second. To wait for something, ``wait_until`` polls it; to
show that something does *not* happen within a period (no reminder after an acknowledgement, no second
inject), ``holds_for`` checks it all through the period and fails the moment it stops holding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05


def wait_until(check: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def holds_for(check: Callable[[], object], seconds: float, what: str = "condition") -> None:
    """Check ``check`` every few milliseconds for ``seconds``; fail as soon as it is falsy."""
    deadline = time.monotonic() + seconds
    while True:
        assert check(), f"{what} stopped holding"
        if time.monotonic() >= deadline:
            return
        time.sleep(POLL_SECONDS)
