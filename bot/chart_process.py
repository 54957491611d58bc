"""Charts are drawn in a helper process, never in the server.

matplotlib and numpy are about 30 MB that a server would keep resident for good once it drew its first
retrospective, and each chart is about 180 ms of the interpreter that aborts and acks would wait behind. So a
helper (``python -m bot.chart_process``) is started on the first chart, draws one chart at a time, and exits
when it has had nothing to draw for ``idle_seconds``, or as soon as its parent is gone (its input closes);
the next chart starts it again.

A request is ``(function, argument)`` and its answer the function's result, both pickled, each behind a 4-byte
length. The function must be importable by name (a module-level function, such as ``bot.retro.chart.draw``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar, cast

log = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")

IDLE_SECONDS = 60.0
DRAW_TIMEOUT_SECONDS = 60.0
_LENGTH = struct.Struct(">I")


class ChartProcessError(RuntimeError):
    """The helper could not draw: the drawing raised, the helper died, or it took longer than allowed."""


class _HelperGone(Exception):
    """The helper closed its output before answering (it exited when idle, or crashed)."""


class ChartProcess:
    """One helper process at a time, started when needed; safe to call from several threads."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, timeout_seconds: float = DRAW_TIMEOUT_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The helper's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def draw(self, function: Callable[[A], R], argument: A) -> R:
        """``function(argument)`` computed in the helper."""
        request = pickle.dumps((function, argument), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                status, value = self._ask(request)
            except _HelperGone:  # it exited when idle just as this request came: a fresh one is asked once
                self._stop()
                try:
                    status, value = self._ask(request)
                except _HelperGone:
                    self._stop()
                    raise ChartProcessError("the chart helper exited without drawing") from None
        if status != "ok":
            raise ChartProcessError(f"the chart helper could not draw: {value}")
        return cast(R, value)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ask(self, request: bytes) -> tuple[str, object]:
        process = self._running()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(_framed(request))
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _HelperGone from None
        deadline = time.monotonic() + self.timeout_seconds
        try:
            (length,) = _LENGTH.unpack(_read_exactly(process.stdout.fileno(), _LENGTH.size, deadline))
            answer: tuple[str, object] = pickle.loads(_read_exactly(process.stdout.fileno(), length, deadline))
        except TimeoutError:
            self._stop(kill=True)
            raise ChartProcessError(f"the chart helper took longer than {self.timeout_seconds:g} s") from None
        return answer

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        command = [sys.executable, "-m", __name__, repr(self.idle_seconds)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        log.debug("chart helper started (pid %s)", self._process.pid)
        return self._process

    def _stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a request left unflushed in a broken pipe
                    stream.close()
        try:
            process.wait(timeout=5)  # its input closed, an idle helper exits at once
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_exactly(fd: int, size: int, deadline: float | None = None) -> bytes:
    """``size`` bytes from ``fd``; ``_HelperGone`` at its end, ``TimeoutError`` past ``deadline`` (monotonic)."""
    chunks, wanted = [], size
    while wanted:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, wanted)
        if not chunk:
            raise _HelperGone
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


_shared = ChartProcess()


def draw(function: Callable[[A], R], argument: A) -> R:
    """``function(argument)`` drawn in the process's shared helper."""
    return _shared.draw(function, argument)


def _serve(idle_seconds: float) -> None:
    source = sys.stdin.fileno()
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever a drawing prints must not corrupt the answers
    while select.select([source], [], [], idle_seconds)[0]:
        try:
            (length,) = _LENGTH.unpack(_read_exactly(source, _LENGTH.size))
            request = _read_exactly(source, length)
        except _HelperGone:
            return  # the parent is gone
        sink.write(_framed(_answer(request)))
        sink.flush()


def _answer(request: bytes) -> bytes:
    try:
        function, argument = pickle.loads(request)
        return pickle.dumps(("ok", function(argument)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # the parent reports it; the helper keeps serving
        return pickle.dumps(("error", f"{type(error).__name__}: {error}"), protocol=pickle.HIGHEST_PROTOCOL)


def _framed(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


if __name__ == "__main__":
    _serve(float(sys.argv[1]) if len(sys.argv) > 1 else IDLE_SECONDS)
