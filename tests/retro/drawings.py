"""Functions the chart helper runs in the tests (importable by name, as the helper needs)."""

from __future__ import annotations

import os
import sys
import time


def helper_pid(_: object) -> int:
    return os.getpid()


def modules_loaded(prefix: str) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for name in sys.modules)


def fails(message: str) -> None:
    raise ValueError(message)


def prints_then_answers(text: str) -> str:
    print("a drawing library's chatter on stdout", flush=True)
    os.write(1, b"and a raw write to stdout\n")
    return text


def dies(_: object) -> None:
    os._exit(3)


def sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
