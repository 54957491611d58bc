"""Every table of every domain, gathered above storage: what Alembic migrates and drift tests compare.

Storage is the ground floor and imports nothing from ``bot``; this module is the one place that knows the
whole schema (``storage/migrations/env.py`` and the tests that need every table import it).
"""

from bot.actions.models import ActionItem
from bot.alerting.models import RunSilence
from bot.audit.models import AuditEvent, AuditHead
from bot.dashboards.models import DashboardAnnotation
from bot.engine.models import Lease, Replica, SpoolApplied
from bot.freezes.models import Freeze, FreezeFeed
from bot.interface.models import RunMessage
from bot.records.models import FaultRecord, Measurement, Outcome
from bot.reports import models as _report_indexes  # noqa: F401  # the indexes the summaries need, on runs
from bot.retro.models import RetrospectivePost
from bot.runs.models import Approval, Run
from bot.safety.models import KillSwitch
from bot.schedule.models import Firing
from storage.db import Base
from storage.dedup_models import ProcessedRequest

__all__ = [
    "ActionItem",
    "Approval",
    "AuditEvent",
    "AuditHead",
    "Base",
    "DashboardAnnotation",
    "FaultRecord",
    "Firing",
    "Freeze",
    "FreezeFeed",
    "KillSwitch",
    "Lease",
    "Measurement",
    "Outcome",
    "ProcessedRequest",
    "Replica",
    "RetrospectivePost",
    "Run",
    "RunMessage",
    "RunSilence",
    "SpoolApplied",
]
