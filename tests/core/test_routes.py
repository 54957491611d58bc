"""The one routing table: every button and form id the messages use is routed, once, to its desk."""

from __future__ import annotations

from unittest.mock import Mock

from bot.interface import ids
from bot.interface.routes import Desks, route_table


def test_every_id_is_routed_and_every_route_has_an_id() -> None:
    routes = route_table(Desks(**{name: Mock(name=name) for name in Desks.__dataclass_fields__}))
    forms = {value for name, value in vars(ids).items() if name.endswith("_SUBMIT")}
    actions = {
        value
        for name, value in vars(ids).items()
        if name.isupper() and isinstance(value, str) and value not in forms and name != "RUN_ACTION_PREFIX"
    }
    assert set(routes.forms) == forms
    assert set(routes.actions) == actions
    assert set(ids.FORM_FIELDS) == forms


def test_a_freeze_goes_to_the_schedule_desk_and_an_alarm_to_the_alarms_desk() -> None:
    desks = Desks(**{name: Mock(name=name) for name in Desks.__dataclass_fields__})
    routes = route_table(desks)
    routes.commands["freeze"](Mock(), ["list"])
    desks.schedule.command.assert_called_once()
    routes.actions[ids.ACKNOWLEDGE_ALARM](Mock(), '{"run": 7}')
    desks.alarms.acknowledge.assert_called_once()
    assert desks.alarms.acknowledge.call_args.args[1] == 7
