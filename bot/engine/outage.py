"""``DB_UNAVAILABLE``: the errors that mean "the database is unreachable right now".

The engine retries those writes later (the spool) and never lets them hold back a revert.
"""

from __future__ import annotations

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DB_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
