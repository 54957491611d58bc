"""Every adapter resolves through the ``chaosbot.adapters`` entry points and documents its parameters."""

from __future__ import annotations

import inspect

import pytest

from adapters import registry
from adapters.base import Adapter

EXPECTED = {"chaos_mesh", "dry_run", "gremlin", "http", "redis", "toxiproxy", "chaostoolkit"}


def test_every_adapter_resolves_through_entry_points() -> None:
    assert set(registry.names()) >= EXPECTED
    for name in EXPECTED:
        adapter = registry.create(name)
        assert isinstance(adapter, Adapter)
        assert adapter.name == name


def test_unknown_adapter_is_a_clear_error() -> None:
    with pytest.raises(registry.UnknownAdapterError) as failure:
        registry.adapter_class("kafka")
    message = str(failure.value)
    assert "unknown adapter 'kafka'" in message
    assert all(name in message for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_parameter_is_documented_in_the_class_docstring(name: str) -> None:
    cls = registry.adapter_class(name)
    doc = inspect.getdoc(cls) or ""
    for field_name, field in cls.Params.model_fields.items():
        assert f"``{field.alias or field_name}``" in doc, f"{name}: {field_name} is not documented"
