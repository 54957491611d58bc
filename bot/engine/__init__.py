"""The run engine: starts runs, watches stop conditions, reverts, the kill switch and the dead man's switch.

No Slack in here: people hear about runs through a ``bot.notify.Notifier``, in ``Words`` from ``wording``.
"""

from bot.engine.aborter import AbortResult
from bot.engine.coordination import Coordination, DatabaseCoordination, RedisCoordination, build_coordination
from bot.engine.endings import ENGINE_ACTOR, Ending
from bot.engine.engine import RunEngine
from bot.engine.errors import AbortImpossible, InjectFailed, PreflightFailed, SteadyStateNotMet
from bot.engine.progress import ConditionProgress, Progress, ProgressPhase

__all__ = [
    "ENGINE_ACTOR",
    "AbortImpossible",
    "AbortResult",
    "ConditionProgress",
    "Coordination",
    "DatabaseCoordination",
    "Ending",
    "InjectFailed",
    "PreflightFailed",
    "Progress",
    "ProgressPhase",
    "RedisCoordination",
    "RunEngine",
    "SteadyStateNotMet",
    "build_coordination",
]
