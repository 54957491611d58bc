from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerting.alertmanager_server import AlertmanagerServer, running_alertmanager


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    yield from running_alertmanager(tmp_path_factory)
