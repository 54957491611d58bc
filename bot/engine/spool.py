"""The local spool: records the database could not take, kept in append-only files until it can.

One JSON object per line, fsynced per record, each with a unique id, in one folder per database
(``spool_folder``). Each process appends to its own file
(``spool-<host>-<pid>-<random>.jsonl``) under an exclusive ``flock``; any process replays every file in the
folder: it takes the file's lock, renames it to ``replay-<random>.jsonl`` (so its owner starts a new file),
applies the records in order and deletes the file once every record is done. A replay cut short (the
database went away again, the process died) leaves the file for the next replay; the record ids make
applying twice harmless (``SpoolApplied``, written in the same transaction as the record).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.engine.outage import DB_UNAVAILABLE

log = logging.getLogger(__name__)

REPLAY_PREFIX = "replay-"
DEFAULT_SPOOL_DIR = Path("chaosbot-data/spool")  # next to the SQLite default (settings: CHAOSBOT_SPOOL_DIR)


@dataclass(frozen=True)
class SpoolRecord:
    """One deferred write: its kind (how to apply it), its data (JSON values only) and a sentence for logs."""

    kind: str
    data: dict[str, Any]
    what: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_line(self) -> bytes:
        body = {"id": self.id, "kind": self.kind, "what": self.what, "data": self.data}
        return (json.dumps(body, separators=(",", ":"), default=str) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> SpoolRecord:
        """Raises ``ValueError`` for a line that is not a whole record (a write cut by a crash)."""
        try:
            raw = json.loads(line)
            return cls(kind=str(raw["kind"]), data=dict(raw["data"]), what=str(raw["what"]), id=str(raw["id"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a spool record: {line[:120]!r}") from exc


def spool_folder(spool_dir: Path, database_url: str) -> Path:
    """The spool of one database under ``spool_dir``: a process never replays records meant for another
    database (a shared folder, or a test suite's many scratch databases)."""
    from storage.db import redact_url

    return spool_dir / hashlib.sha256(redact_url(database_url).encode()).hexdigest()[:16]


class Spool:
    """The spool folder; see the module docstring. ``replay`` takes the function that applies one record."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"spool-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"

    def append(self, record: SpoolRecord) -> None:
        """Append one record and fsync it (file and folder) before returning."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _same_file(fd, self.path):  # a replay renamed it while we waited: start a new file
                    continue
                if _ends_mid_line(fd):  # a crash cut the last write: keep the next record on its own line
                    os.write(fd, b"\n")
                os.write(fd, record.to_line())
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_folder(self.folder)
            log.warning("spooled to %s: %s", self.path, record.what)
            return

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def waiting(self) -> bool:
        return bool(self.files())

    def replay(self, apply: Callable[[SpoolRecord], None]) -> bool:
        """Apply every spooled record in order; True when the spool is empty afterwards.

        ``apply`` raises one of ``DB_UNAVAILABLE`` when the database cannot take it: the replay stops there
        and the file stays for the next one. Any other outcome of ``apply`` counts as done.
        """
        try:
            for path in self.files():
                if not self._replay_file(path, apply):
                    return False
        except DB_UNAVAILABLE as exc:
            log.info("spool replay stopped: the database is still unreachable (%s)", type(exc).__name__)
            return False
        return not self.waiting()

    def _replay_file(self, path: Path, apply: Callable[[SpoolRecord], None]) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process replays it, or its owner is appending: later
                return False
            if not _same_file(fd, path):
                return True
            if not path.name.startswith(REPLAY_PREFIX):
                claimed = path.with_name(f"{REPLAY_PREFIX}{uuid.uuid4().hex}.jsonl")
                os.rename(path, claimed)
                _fsync_folder(self.folder)
                path = claimed
            for line in _read_all(fd).splitlines():
                if line.strip():
                    self._apply_line(line, apply)
            os.unlink(path)
            _fsync_folder(self.folder)
            return True
        finally:
            os.close(fd)

    @staticmethod
    def _apply_line(line: bytes, apply: Callable[[SpoolRecord], None]) -> None:
        try:
            record = SpoolRecord.from_line(line)
        except ValueError:
            log.error("skipping a damaged spool line (cut by a crash?): %r", line[:200])
            return
        apply(record)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
