"""Appending to and verifying the hash-chained audit log, and exporting the record."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audit.models import AuditEvent, AuditHead
from storage.db import Database, utcnow

GENESIS = "0" * 64


def canonical(payload: dict[str, Any] | list[Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def event_hash(
    *, seq: int, at: datetime, actor: str, action: str, run_id: int | None, payload: str, prev_hash: str
) -> str:
    material = canonical(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "run_id": run_id,
            "payload": payload,
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(material.encode()).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    run_id: int | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction. Locking the head row orders appends across processes."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    # Hash the instant as the database will hand it back (UTC), or verification would fail on this row.
    when = (at or utcnow()).astimezone(UTC)
    text = canonical(payload or {})
    seq = head.seq + 1
    digest = event_hash(seq=seq, at=when, actor=actor, action=action, run_id=run_id, payload=text, prev_hash=head.hash)
    event = AuditEvent(
        seq=seq,
        at=when,
        actor=actor,
        action=action,
        run_id=run_id,
        payload=text,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    head.seq, head.hash = seq, digest
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def verify(session: Session, *, batch: int = 5000) -> ChainReport:
    """Recompute every hash in order; report the first row that was edited, removed or inserted."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for event in _events(session, batch):
        if event.seq != expected_seq:
            return ChainReport(False, checked, f"row {expected_seq} is missing (found {event.seq} next)", expected_seq)
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, f"row {event.seq} does not link to row {event.seq - 1}", event.seq)
        recomputed = event_hash(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            run_id=event.run_id,
            payload=event.payload,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return ChainReport(False, checked, f"row {event.seq} was altered (its hash does not match)", event.seq)
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is None or head.seq != checked or head.hash != expected_prev:
        return ChainReport(False, checked, "the newest rows were removed (the chain head does not match)", checked)
    return ChainReport(True, checked)


def _events(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def timeline(session: Session, run_id: int) -> list[AuditEvent]:
    """Every event of one run, oldest first: the run's timeline."""
    return list(session.scalars(select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(AuditEvent.seq)))


def event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "run_id": event.run_id,
        "payload": json.loads(event.payload),
        "hash": event.hash,
    }


def write_rows(rows: list[dict[str, Any]], out: IO[str], fmt: str) -> None:
    """CSV (nested values as JSON text) or JSON Lines."""
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
        return
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: canonical(v) if isinstance(v, dict | list) else v for k, v in row.items()})


class AuditTrail:
    """Audit events for what is not a state change (a command typed, a Slack message posted)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: str, action: str, run_id: int | None = None, **payload: object) -> None:
        """Append one event in its own transaction."""
        with self.db.transaction() as session:
            append(session, actor=actor, action=action, run_id=run_id, payload=dict(payload))
