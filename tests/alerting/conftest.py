from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerting.alertmanager_server import BINARY, AlertmanagerServer
from tests.services import REQUIRE_SERVICES


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    if BINARY is None:
        if REQUIRE_SERVICES:
            pytest.fail("prometheus-alertmanager is not installed; CHAOSBOT_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    server = AlertmanagerServer(Path(tmp_path_factory.mktemp("alertmanager")))
    yield server
    server.stop()
