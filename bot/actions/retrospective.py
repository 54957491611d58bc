"""A run's action items as its retrospective lists them (``bot.retro.service.build``'s ``action_items``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from bot.actions import service
from bot.actions.models import ItemStatus
from bot.retro.models import ActionItemLine


def action_item_lines(session: Session, run_id: int) -> Sequence[ActionItemLine]:
    return [
        ActionItemLine(
            label=item.label,
            what=item.what,
            owner=item.owner,
            due_on=item.due_on,
            done=item.item_status is ItemStatus.DONE,
            link=item.backlog_url,
        )
        for item in service.of_run(session, run_id=run_id)
    ]
