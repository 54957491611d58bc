"""Start and stop the demo's target: the share-link portal, and a Redis cache in front of it when one can run.

``demo_target()`` is a context manager: on entry the portal (and ``redis-server``, when it is on the PATH) run
as child processes on 127.0.0.1, and ``PORTAL_URL`` (and ``DEMO_REDIS_URL``) name them; on exit, also on
Ctrl-C or an error, both are stopped. Each child also gets SIGTERM if this process dies (``PR_SET_PDEATHSIG``),
so a demo never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CATALOGUE = Path(__file__).with_name("catalogue.yml")
READY_SECONDS = 10.0


@dataclass(frozen=True)
class DemoTarget:
    portal_url: str
    redis_url: str | None

    def environment(self) -> dict[str, str]:
        env = {"PORTAL_URL": self.portal_url}
        if self.redis_url:
            env["DEMO_REDIS_URL"] = self.redis_url
        return env


@contextlib.contextmanager
def demo_target(*, with_redis: bool = True) -> Iterator[DemoTarget]:
    """The portal (and its cache) running; their URLs set in ``os.environ`` for the adapters and probes."""
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="chaosbot-demo-") as folder:
        redis_url = None
        if with_redis and shutil.which("redis-server"):
            port = _free_port()
            stack.enter_context(_child([*_redis_argv(port, Path(folder))], ready=lambda: _answers_ping(port)))
            redis_url = f"redis://127.0.0.1:{port}/0"
        portal_argv = [sys.executable, "-m", "bot.demo.portal", "--port", str(_free_port())]
        if redis_url:
            portal_argv += ["--redis", redis_url]
        portal = stack.enter_context(_child(portal_argv, ready=None))
        target = DemoTarget(portal_url=f"http://127.0.0.1:{_announced_port(portal)}", redis_url=redis_url)
        saved = {name: os.environ.get(name) for name in target.environment()}
        os.environ.update(target.environment())
        try:
            yield target
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _redis_argv(port: int, folder: Path) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--loglevel", "warning"]  # fmt: skip


@contextlib.contextmanager
def _child(argv: list[str], *, ready: Callable[[], bool] | None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # Ctrl-C in the terminal reaches the shell, which stops the child in order
        preexec_fn=_die_with_parent,
    )
    try:
        if ready is not None:
            _wait_until(ready, argv[0])
        yield process
    finally:
        _stop(process)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


def _announced_port(process: subprocess.Popen[str]) -> int:
    """The portal prints ``listening on PORT`` once it accepts connections."""
    assert process.stdout is not None  # started with stdout=PIPE
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        raise RuntimeError(f"the demo portal did not start (it said {line.strip()!r})")
    return int(line.split()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_until(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {READY_SECONDS:.0f} s")
        time.sleep(0.05)
