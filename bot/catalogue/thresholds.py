"""A stop condition's threshold in the words people read (progress cards, retrospectives)."""

from __future__ import annotations

from bot.catalogue.models import AlertsProbe, ChaosToolkitProbe, HttpProbe, StopCondition


def threshold_text(condition: StopCondition) -> str:
    """The threshold as people read it, e.g. ``status in [200], ≤ 500 ms`` or ``≤ 0``."""
    probe = condition.probe
    if isinstance(probe, HttpProbe):
        parts = [f"status in {probe.expect_status}"]
        if probe.max_latency_ms is not None:
            parts.append(f"≤ {probe.max_latency_ms:g} ms")
        return ", ".join(parts)
    if isinstance(probe, AlertsProbe):
        return "no alert firing with " + ", ".join(f"{k}={v}" for k, v in probe.matchers.items())
    if isinstance(probe, ChaosToolkitProbe):
        return f"within the tolerance of the Chaos Toolkit probe '{probe.probe}'"
    bounds = []
    if probe.min is not None:
        bounds.append(f"≥ {probe.min:g}")
    if probe.max is not None:
        bounds.append(f"≤ {probe.max:g}")
    return " and ".join(bounds)
