"""``Job``: periodic work the runtime schedules in every replica (each desk lists its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """What to run, every how many seconds, under which scheduler id."""

    run: Callable[[], object]
    seconds: float
    id: str
