"""A desk's periodic work, run by the runtime's scheduler on every replica (each job is safe to run on several)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    run: Callable[[], object]
    seconds: float
    id: str
