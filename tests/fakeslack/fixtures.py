"""Pytest plugin: ``pytest_plugins = ["tests.fakeslack.fixtures"]`` in the suite's root conftest.

``fake_slack`` is one server for the whole session; ``slack`` is that server reset for each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeSlack


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.reset()
    return fake_slack
