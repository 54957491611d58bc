"""Every table, imported in one place so migrations and tests see the whole schema."""

from bot.audit.models import AuditEvent, AuditHead
from bot.runs.models import Approval, FaultRecord, Measurement, Outcome, Run
from bot.safety.models import KillSwitch, Lease
from storage.db import Base
from storage.dedup_models import ProcessedRequest

__all__ = [
    "Approval",
    "AuditEvent",
    "AuditHead",
    "Base",
    "FaultRecord",
    "KillSwitch",
    "Lease",
    "Measurement",
    "Outcome",
    "ProcessedRequest",
    "Run",
]
