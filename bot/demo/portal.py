"""A stand-in for the playbook's share-link portal: something real for the demo to break and a probe to watch.

Run as its own process on 127.0.0.1 (``python -m bot.demo.portal``; it prints ``listening on PORT`` when it
is ready). It serves:

- ``GET /api/share/health``: validates a share token the way the portal does, through a cache and then the
  database; answers 200 with the time it took, or 503 while the database is failing. This is what the
  demo's stop condition measures (latency and status).
- ``PUT /faults/{name}``: the fault switch the ``http`` adapter drives. ``{"enabled": true, "ms": 900}``
  turns ``slow-database`` on (every validation waits ``ms`` more), ``failing-database`` answers 503,
  ``{"enabled": false}`` reverts. ``GET /faults`` shows what is on.
- With ``--redis URL`` (the demo passes one when ``redis-server`` is on the PATH), tokens are first looked up
  in that Redis with a short timeout, as CE-01's share-token cache: when the ``redis`` adapter pauses the
  cache's clients, validation falls back to the database and stays under its threshold.

Nothing here is shared with the bot: the demo talks to it over HTTP only, like a real target.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CACHE_TIMEOUT_SECONDS = 0.2
DATABASE_SECONDS = 0.01  # one database round trip; a validation the cache could not answer costs two
TOKEN = "demo-share-token"
FAULTS = ("slow-database", "failing-database")


class Portal:
    """The portal's state: which faults are on, and the optional Redis cache."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.lock = threading.Lock()
        self.faults: dict[str, dict[str, Any]] = {}
        self.cache = _cache(redis_url) if redis_url else None

    def set_fault(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if body.get("enabled"):
                self.faults[name] = {"ms": max(0, min(int(body.get("ms", 0)), 10_000))}
            else:
                self.faults.pop(name, None)
            return dict(self.faults)

    def validate(self) -> tuple[int, dict[str, Any]]:
        """One share-token validation: the token from the cache (or the database when the cache does not
        answer), then the access recorded in the database, which every validation does."""
        began = time.monotonic()
        source = "cache" if self._from_cache() else "database"
        with self.lock:
            slow, failing = self.faults.get("slow-database"), "failing-database" in self.faults
        lookups = 2 if source == "database" else 1
        time.sleep(lookups * (DATABASE_SECONDS + (slow["ms"] / 1000 if slow else 0)))
        if failing:
            return 503, {"ok": False, "source": source, "error": "database unavailable"}
        return 200, {"ok": True, "source": source, "ms": round((time.monotonic() - began) * 1000, 1)}

    def _from_cache(self) -> bool:
        if self.cache is None:
            return False
        try:
            return self.cache.get(TOKEN) is not None
        except Exception:  # a paused or unreachable cache: fall back to the database, as the portal does
            return False


def _cache(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=CACHE_TIMEOUT_SECONDS, socket_connect_timeout=1)
    client.set(TOKEN, "valid")
    return client


def handler_for(portal: Portal) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            if self.path == "/api/share/health":
                self._answer(*portal.validate())
            elif self.path == "/faults":
                with portal.lock:
                    self._answer(200, dict(portal.faults))
            else:
                self._answer(404, {"error": "not found"})

        def do_PUT(self) -> None:
            name = self.path.removeprefix("/faults/")
            if not self.path.startswith("/faults/") or name not in FAULTS:
                self._answer(404, {"error": f"no such fault; known: {', '.join(FAULTS)}"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except ValueError:
                self._answer(400, {"error": "expected a JSON body"})
                return
            self._answer(200, portal.set_fault(name, body if isinstance(body, dict) else {}))

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass  # the demo's terminal is for the bot's messages

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the demo's share-link portal")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed when ready)")
    parser.add_argument("--redis", help="a Redis URL to use as the share-token cache (CE-01)")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(Portal(args.redis)))
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
