"""Redis adapter checks that need no server: parameter validation, version parsing, URL display."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import AdapterParamsError
from adapters.redis import RedisAdapter, display_url, parse_version

URL = "${CE01_REDIS_URL}"


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"url": URL, "mode": "sometimes"}, "mode"), ({"url": "http://cache:6379"}, "url"), ({"mode": "all"}, "url")],
)
def test_bad_params_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        RedisAdapter.validate(raw)
    assert failure.value.field == field


def test_version_parsing_and_url_display() -> None:
    assert parse_version("7.0.15") >= (6, 2) > parse_version("6.0.9")
    assert parse_version("255.255.255-rc1") == (255, 255, 255)
    assert display_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert display_url("redis://cache:6379/0") == "redis://cache:6379/0"
