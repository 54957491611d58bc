"""The few statistics a retrospective shows: percentiles and the worst value against a threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile by linear interpolation between closest ranks (NumPy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def worst(values: Sequence[float], *, upper: float | None, lower: float | None) -> float | None:
    """The value furthest on the wrong side: the highest when there is a maximum, the lowest for a minimum only."""
    if not values:
        return None
    if upper is None and lower is not None:
        return min(values)
    return max(values)
