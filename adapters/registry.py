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


def create(name: str, *, dry_run: bool = False) -> Adapter:
    """A fresh adapter instance; adapters hold no per-run state, so one per call is fine.

    ``dry_run``: a rehearsal of adapter ``name`` that takes ``name``'s own parameters and contacts nothing
    (``name`` may also be ``dry_run`` itself, with its ``would_use`` form).
    """
    if not dry_run:
        return adapter_class(name)()
    from adapters.dry_run import DryRunAdapter  # the dry-run adapter looks adapters up here: import late

    return DryRunAdapter.wrapping(name)()
