"""Load the fakeslack fixtures for this directory unless the root conftest already registered them."""

from __future__ import annotations

import pytest

PLUGIN = "tests.fakeslack.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
