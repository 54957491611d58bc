"""Test doubles standing in for Slack: a fake Web API server, Block Kit validation, signed wire payloads."""

from __future__ import annotations

from .blockkit import validate_blocks, validate_view
from .server import Call, FakeSlack

__all__ = ["Call", "FakeSlack", "validate_blocks", "validate_view"]
