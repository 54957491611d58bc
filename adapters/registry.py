"""Adapters are found through the ``chaosbot.adapters`` entry-point group, so a team can ship its own."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from adapters.base import Adapter

ENTRY_POINT_GROUP = "chaosbot.adapters"


class UnknownAdapterError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown adapter {name!r}; known adapters: {', '.join(known) or 'none'}")
        self.name = name


@cache
def _classes() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not an Adapter subclass")
        found[entry.name] = cls
    return found


def names() -> list[str]:
    return sorted(_classes())


def adapter_class(name: str) -> type[Adapter]:
    try:
        return _classes()[name]
    except KeyError:
        raise UnknownAdapterError(name, names()) from None


def create(name: str) -> Adapter:
    """A fresh adapter instance; adapters hold no per-run state, so one per call is fine."""
    return adapter_class(name)()
