"""``chaosbot serve``: the Slack app over HTTP (gunicorn, gthread) or Socket Mode."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]  # gunicorn ships no type hints

from bot.errors import ConfigurationError

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.settings import Settings
    from bot.slack.web import WebApp

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_SECONDS = 30
# The validated gunicorn options, handed from ``main`` to the lean master it execs (``_lean_master``).
MASTER_OPTIONS_VARIABLE = "CHAOSBOT_GUNICORN_OPTIONS"


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM (docker stop, a pod deletion) ends the main thread's wait; ``finally`` then shuts down safely."""
    raise SystemExit(0)


def freeze_start_up_objects() -> None:
    """Exclude everything built at start from the cyclic garbage collector's scans.

    After start-up the process holds about 140,000 objects (modules, models, SQLAlchemy mappers). Each full
    collection walks them all, about 65 ms with every thread stopped, and under a burst one landed on the
    acks in flight: the ack tail. Frozen objects are never scanned (and never freed, which they are not)."""
    gc.collect()
    gc.freeze()


def require_slack(settings: Settings) -> tuple[str, str]:
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(f"chaosbot serve needs {' and '.join(missing)} (see README: Settings)")
    assert settings.slack_bot_token and settings.slack_signing_secret
    return settings.slack_bot_token.get_secret_value(), settings.slack_signing_secret.get_secret_value()


def build(settings: Settings) -> tuple[Runtime, Any]:
    """The runtime and the Bolt app, wired to the Web API at SLACK_API_URL.

    Imported here, not at module level: gunicorn's master never serves a request, and everything it imports
    stays resident next to the worker's own copy (about 45 MB: SQLAlchemy, Bolt, pydantic models)."""
    # httpx imports its command-line tool (click, pygments: 1.4 MB) when those happen to be installed; the
    # server never runs it. A None entry makes that optional import fail fast, as httpx expects it might.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None is import's "not available"
    from bot.runtime import build_runtime
    from bot.slack.app import create_app
    from bot.slack.client import SlackGroups, SlackSurface, web_client
    from bot.slack.files import SlackRetroOutlet
    from bot.tracing import configure_tracing

    configure_tracing()  # here, in the process that serves: the exporter's thread must not be forked away
    token, secret = require_slack(settings)
    client = web_client(token, settings.slack_api_url, retry_backoff=settings.slack_retry_seconds)
    runtime = build_runtime(
        settings, SlackSurface(client), members_of=SlackGroups(client), outlet=SlackRetroOutlet(client)
    )
    app = create_app(
        client=client, signing_secret=secret, handlers=runtime.handlers, ledger=runtime.ledger, pools=runtime.pools
    )
    recovered = runtime.recover_orphans()
    if recovered:
        log.warning("reverted runs left behind by a lost process: %s", recovered)
    runtime.start_jobs()
    return runtime, app


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WebApp:
        # Runs in the worker process, so the engine's threads and leases belong to the process serving requests.
        from bot.settings import load_settings
        from bot.slack.web import WebApp

        runtime, app = build(load_settings())
        self.runtime = runtime
        freeze_start_up_objects()
        schedule, feeds = runtime.schedule, runtime.context.policy.freeze_calendars
        stale = schedule.stale if schedule is not None and feeds else None  # no feeds: no "calendars" in /healthz
        return WebApp(app, runtime.context.db, runtime.redis, stale=stale, foreground=runtime.pools.foreground)

    def worker_exit(self, _server: Any, _worker: Any) -> None:
        """gunicorn's worker_exit hook, in the worker after it stopped taking requests (SIGTERM from the
        master): hand each run over to another replica, or revert and abort it, before the process exits."""
        runtime: Runtime | None = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.shut_down()
            _flush_traces()


def main(_args: argparse.Namespace) -> int:
    from bot.logs import configure_logging, gunicorn_log_config, resolved_format
    from bot.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    require_slack(settings)
    if settings.slack_app_token is not None:
        return _socket_mode(settings)
    options = {
        "bind": f"{_host(settings.bind_address)}:{settings.port}",
        "worker_class": "gthread",
        "workers": int(os.environ.get("CHAOSBOT_WORKERS", "1")),
        "threads": int(os.environ.get("CHAOSBOT_THREADS", "8")),
        "timeout": 30,
        # SIGTERM → the worker hands its runs over or reverts them (worker_exit) within this; deploy
        # manifests must give the pod more (terminationGracePeriodSeconds, docker stop -t).
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "accesslog": None,
        # gunicorn's control socket sits at one path per user: replicas on one host would fight over it.
        "control_socket_disable": True,
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": gunicorn_log_config(resolved_format(settings.log_format), settings.log_level),
    }
    # Settings are checked here, then this process becomes a lean gunicorn master (same pid, so SIGTERM from
    # docker or Kubernetes still reaches it): the master never serves a request, and whatever this process
    # imported (the CLI, pydantic, settings: 15 MB) would stay resident in it, and again in each worker.
    os.environ[MASTER_OPTIONS_VARIABLE] = json.dumps(options)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bot.slack.serve"])


def _lean_master() -> int:
    """gunicorn's master, started by ``main`` through exec; its worker loads the settings and the app."""
    server = _Gunicorn(json.loads(os.environ.pop(MASTER_OPTIONS_VARIABLE)))
    server.cfg.set("worker_exit", server.worker_exit)
    server.run()
    return 0


def _socket_mode(settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime, app = build(settings)
    freeze_start_up_objects()
    assert settings.slack_app_token is not None
    log.info("connecting to Slack in Socket Mode")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    handler = None
    try:
        handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
        handler.start()  # type: ignore[no-untyped-call]  # slack_bolt leaves start() unannotated
    finally:
        if handler is not None:
            handler.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves close() unannotated
        runtime.shut_down()
        _flush_traces()
    return 0


if __name__ == "__main__":
    sys.exit(_lean_master())


def _flush_traces() -> None:
    """The spans of the shut-down (hand-overs, reverts) leave before the process does."""
    from bot.tracing import flush

    flush()


def _host(address: str) -> str:
    """gunicorn wants an IPv6 address in brackets."""
    return f"[{address.strip('[]')}]" if ":" in address else address
