"""CE-06 for the bot itself: a burst of 1,000 interactions from 50 concurrent clients while Slack rate-limits.

Setup (not measured): a scratch PostgreSQL database and Redis (``--redis-url``, keys cleared before and after),
``chaosbot serve``, two runs started and active for the whole burst, and ``--approvable`` runs planned and
waiting for approvals. The fake Slack runs in its own process and answers HTTP 429 with ``Retry-After: 1`` to
every fifth Web API call once the burst begins; it logs every call (time, status, Retry-After, an identity of
the request) to a JSON Lines file the bench reads.

The burst, shuffled and sent by 50 clients, each request signed and on a new connection:

- ``/chaos status`` from a different person each time;
- plan submissions (the plan modal's ``view_submission``), each a new run;
- Approve clicks on the waiting runs by the three approvers, some (approver, run) pairs clicked twice as two
  separate deliveries;
- ``/chaos abort RUN-n`` on runs that are not running (refused), from a different person each time, and at the
  very end the aborts of the two active runs;
- a share of the above delivered again with ``X-Slack-Retry-Num: 1`` (same body: Slack's redelivery).

Checked afterwards: every ack under 3 s (p50/p99/max reported); each plan created exactly one run; each
(approver, run) pair gave exactly one approval; each command recorded once in the audit log; each person who
asked got exactly one answer; every message the fake Slack rate-limited was retried no sooner than its
Retry-After and delivered in the end. Results: a table on stdout and ``bench/results/burst.json``.

    .venv/bin/python bench/burst.py [--interactions 1000] [--clients 50] [--max-seconds 180]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import queue
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h
from sqlalchemy import bindparam, create_engine, text

from bot.catalogue.service import load_catalogue
from bot.interface.metadata import PlanMeta, RunRef
from bot.policy.service import load_policy
from bot.runs.core import RunCore
from bot.runs.rules import PlanRequest
from storage.db import Database
from tests.fakeslack import wire
from tests.fakeslack.server import FakeSlack, _Failure, _failure_reply, _Reply

REDIS_BENCH_URL = "redis://127.0.0.1:6379/15"
ACK_TARGET_SECONDS = 3.0
RETRY_AFTER_SECONDS = 1
RETRY_TOLERANCE_SECONDS = 0.05  # Retry-After is whole seconds; the client's clock and ours are the same here
ACTIVE_EXPERIMENTS = ("CE-90", "CE-91")  # the two runs active during the burst (dry runs: nothing is contacted)
SHARE = {"status": 0.30, "plan": 0.20, "approve": 0.25, "abort": 0.10}  # the rest (0.15): redeliveries

_EXPERIMENT = """\
  - id: {id}
    title: Rehearsed flag flip {id}
    hypothesis: The portal keeps serving when the share-token flag flips.
    method: Flip the share-token flag (rehearsed by the dry_run adapter, nothing is contacted).
    expected_outcome: No user-visible errors.
    safeguards: [Dry run only.]
    rollback_steps: ["Run `/chaos abort`."]
    environments: [staging]
    fault:
      adapter: dry_run
      params:
        would_use: http
        params:
          inject: {{method: PUT, url: "http://127.0.0.1:9/flags/{id}", json: {{enabled: true}}}}
          revert: {{method: PUT, url: "http://127.0.0.1:9/flags/{id}", json: {{enabled: false}}}}
    max_duration: 15m
    rto: 10s
"""
CATALOGUE = "experiments:\n" + "".join(_EXPERIMENT.format(id=experiment) for experiment in ACTIVE_EXPERIMENTS)


# -- the rate-limiting fake Slack (its own process) --------------------------------------------------------


class RateLimitedSlack(FakeSlack):
    """FakeSlack that answers 429 to every ``every``-th Web API call while limiting, and logs each call."""

    def __init__(self, log_path: Path, every: int) -> None:
        super().__init__()
        self.every = every
        self.limiting = False
        self.count = 0
        self.log = log_path.open("a", encoding="utf-8")
        self.log_lock = threading.Lock()

    def handle_api(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> _Reply:
        if method == "bench.ratelimit":  # the bench's switch; chaosbot never calls it
            self.limiting = params.get("on") == "1"
            return _Reply(200, {"ok": True})
        reply = super().handle_api(method, params, headers)
        self._log(method, params, reply)
        return reply

    def _take_failure(self, method: str) -> _Reply | None:
        with self._lock:
            self.count += 1
            limited = self.limiting and self.count % self.every == 0
        if limited:
            return _failure_reply(_Failure(429, RETRY_AFTER_SECONDS, None, 1))
        return super()._take_failure(method)

    def _log(self, method: str, params: dict[str, Any], reply: _Reply) -> None:
        identity = hashlib.sha256(f"{method} {json.dumps(params, sort_keys=True)}".encode()).hexdigest()[:16]
        entry = {
            "time": time.time(),
            "method": method,
            "status": reply.status,
            "ok": bool(reply.body.get("ok")),
            "retry_after": int(reply.headers["Retry-After"]) if "Retry-After" in reply.headers else None,
            "request": identity,
            "channel": params.get("channel"),
            "user": params.get("user"),
            "thread_ts": params.get("thread_ts"),
            "text": str(params.get("text") or "")[:200],
        }
        with self.log_lock:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()


def serve_fake_slack(log_path: Path) -> int:
    fake = RateLimitedSlack(log_path, every=5).start()
    for user in (h.OWNER, h.RELIABILITY, h.SECURITY, h.STAKEHOLDER, h.EXECUTIVE, h.OUTSIDER):
        fake.add_user(user)
    print(fake.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    return 0


def start_fake_slack(stack: contextlib.ExitStack, log_path: Path) -> str:
    process = h.Process(
        "fakeslack", [sys.executable, str(Path(__file__).resolve()), "--serve-fake-slack", str(log_path)]
    )
    stack.callback(process.stop)
    assert process.popen.stdout is not None
    line = process.popen.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        raise RuntimeError(f"the fake Slack did not start (said {line!r})")
    return line


def set_rate_limiting(slack_url: str, on: bool) -> None:
    wire.post(
        f"{slack_url}bench.ratelimit", f"on={int(on)}".encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )


def read_slack_log(path: Path) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return []


# -- the burst ---------------------------------------------------------------------------------------------


@dataclass
class Interaction:
    kind: str  # status | plan | approve | abort | abort-active
    request: wire.SignedRequest
    user: str
    redelivery: bool = False
    key: str = ""  # what it must be applied as: the person asking, the (run, approver) pair, the active run
    status: int = 0
    seconds: float = float("nan")


@dataclass
class Setup:
    active: list[int]
    approvable: list[int]
    runs_before: int
    audit_before: int


def build(args: argparse.Namespace, setup: Setup, rng: random.Random) -> list[Interaction]:
    redeliveries = round(args.interactions * (1 - sum(SHARE.values())))
    counts = {kind: round(args.interactions * share) for kind, share in SHARE.items()}
    counts["status"] += args.interactions - redeliveries - sum(counts.values()) - len(setup.active)
    items: list[Interaction] = []
    for i in range(counts["status"]):
        user = f"U0ST{i:05d}"
        items.append(Interaction("status", wire.slash_command("status", user, channel_id=h.CHANNEL), user, key=user))
    meta = PlanMeta(experiment=ACTIVE_EXPERIMENTS[0], channel=h.CHANNEL).dump()
    for i in range(counts["plan"]):
        start = int((datetime.now(UTC) + timedelta(hours=2, minutes=i)).timestamp())
        values = {
            "environment": {"value": wire.select_value("staging")},
            "planned_start": {"value": wire.datetime_value(start)},
            "rollback_steps": {"value": wire.text_value("1. Run `/chaos abort`.")},
            "notes": {"value": wire.text_value(f"burst plan {i}")},
        }
        request = wire.view_submission("plan.submit", values, h.OWNER, meta)
        items.append(Interaction("plan", request, h.OWNER, key=f"plan {i}"))
    pairs = [(run, approver) for run in setup.approvable for approver in h.APPROVERS]
    for i in range(counts["approve"]):
        run, approver = pairs[i % len(pairs)] if i < len(pairs) else rng.choice(pairs)
        request = wire.block_action("run.approve", RunRef(run=run).dump(), approver, channel_id=h.CHANNEL)
        items.append(Interaction("approve", request, approver, key=f"{run}/{approver}"))
    for i in range(counts["abort"]):
        user, run = f"U0AB{i:05d}", rng.choice(setup.approvable)
        request = wire.slash_command(f"abort RUN-{run} burst", user, channel_id=h.CHANNEL)
        items.append(Interaction("abort", request, user, key=user))
    rng.shuffle(items)
    for original in rng.sample(items, redeliveries):
        headers = {**original.request.headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        again = Interaction(original.kind, wire.SignedRequest(original.request.body, headers), original.user, True)
        again.key = original.key
        items.insert(min(len(items), items.index(original) + rng.randint(1, 60)), again)  # close behind: in flight
    for run in setup.active:  # last: the two runs stay active through the burst
        request = wire.slash_command(f"abort RUN-{run} end of the burst", h.RELIABILITY, channel_id=h.CHANNEL)
        items.append(Interaction("abort-active", request, h.RELIABILITY, key=str(run)))
    return items


def fire(events_url: str, items: list[Interaction], clients: int, deadline: float) -> float:
    work: queue.Queue[Interaction] = queue.Queue()
    for item in items:
        work.put(item)
    threads = h.Threads()

    def client() -> None:
        while time.monotonic() < deadline:
            try:
                item = work.get_nowait()
            except queue.Empty:
                return
            try:
                item.status, item.seconds = h.send(events_url, item.request, timeout=15)
            except OSError:
                item.status = -1

    began = time.perf_counter()
    for i in range(clients):
        threads.spawn(client, f"client-{i}")
    threads.join(timeout=max(1.0, deadline - time.monotonic()) + 20)
    return time.perf_counter() - began


# -- checks ------------------------------------------------------------------------------------------------


@dataclass
class Report:
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: Any = None) -> None:
        self.checks[name] = ok
        if detail is not None:
            self.details[name] = detail


def retry_findings(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Did every retry wait its Retry-After? Calls are told apart by method and parameters only, so two
    separate but identical calls (the same answer to the same person, twice) look like one call and its retry.
    Each 429 is therefore paired with the earliest later identical call, not yet paired, that came at least
    Retry-After after it: a retry is early only when identical calls followed the 429 and none of them waited."""
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_request[call["request"]].append(call)
    limited = early = undelivered = 0
    waits: list[float] = []
    examples: list[str] = []
    for attempts in by_request.values():
        attempts.sort(key=lambda c: c["time"])
        paired: set[int] = set()
        for i, call in enumerate(attempts):
            if call["status"] != 429:
                continue
            limited += 1
            later = [j for j in range(i + 1, len(attempts)) if j not in paired]
            allowed = call["time"] + call["retry_after"] - RETRY_TOLERANCE_SECONDS
            retry = next((j for j in later if attempts[j]["time"] >= allowed), None)
            if retry is not None:
                paired.add(retry)
                waits.append(attempts[retry]["time"] - call["time"])
            elif later:
                early += 1
                waited = attempts[later[0]]["time"] - call["time"]
                examples.append(f"{call['method']} retried after {waited:.2f}s (Retry-After {call['retry_after']})")
        if any(c["status"] == 429 for c in attempts) and not any(c["ok"] for c in attempts):
            undelivered += 1
            examples.append(f"{attempts[0]['method']} to {attempts[0]['channel']} never delivered")
    return {
        "calls": len(calls),
        "answered_429": limited,
        "share_429": round(limited / max(1, len(calls)), 3),
        "retried_too_early": early,
        "never_delivered": undelivered,
        "shortest_wait_after_429_s": round(min(waits), 3) if waits else None,
        "examples": examples[:10],
    }


def verify(items: list[Interaction], setup: Setup, database_url: str, calls: list[dict[str, Any]]) -> Report:
    report = Report()
    acked = [i for i in items if i.status == 200]
    report.check("every request acknowledged with 200", len(acked) == len(items), Counter(i.status for i in items))
    slow = [i.seconds for i in acked if i.seconds >= ACK_TARGET_SECONDS]
    report.check("every ack under 3 s", not slow and len(acked) == len(items), {"over_3s": len(slow)})
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            runs = db.execute(text("SELECT count(*) FROM runs")).scalar_one()
            plans = len({i.key for i in items if i.kind == "plan"})
            report.check(
                "each plan created exactly one run",
                runs - setup.runs_before == plans,
                {"plans_sent": plans, "runs_created": runs - setup.runs_before},
            )
            approvals = Counter(
                f"{run}/{user}"
                for run, user in db.execute(text("SELECT run_id, user_id FROM approvals")).all()
                if run in setup.approvable
            )
            pairs = {i.key for i in items if i.kind == "approve"}
            report.check(
                "each (run, approver) clicked gave exactly one approval",
                all(approvals.get(pair) == 1 for pair in pairs) and all(n == 1 for n in approvals.values()),
                {"pairs_clicked": len(pairs), "approvals": sum(approvals.values())},
            )
            events = Counter(
                action
                for (action,) in db.execute(
                    text("SELECT action FROM audit_events WHERE seq > :seq"), {"seq": setup.audit_before}
                ).all()
            )
            commands = len({i.key for i in items if i.kind in ("status", "abort", "abort-active")})
            report.check(
                "each command recorded once in the audit log",
                events.get("command", 0) == commands,
                {"commands_sent": commands, "recorded": events.get("command", 0)},
            )
            report.check(
                "audit: one run.planned per plan, one approval.given per approval",
                events.get("run.planned", 0) == plans and events.get("approval.given", 0) == sum(approvals.values()),
                dict(events),
            )
            in_active = text("SELECT id, state FROM runs WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
            states = {run: state for run, state in db.execute(in_active, {"ids": setup.active}).all()}
            report.check("the two active runs were aborted", all(s == "aborted" for s in states.values()), states)
    finally:
        engine.dispose()
    delivered = [c for c in calls if c["ok"]]
    answers = Counter(
        c["user"] or c["channel"] for c in delivered if c["method"] in ("chat.postEphemeral", "chat.postMessage")
    )
    asked = [i.key for i in items if i.kind in ("status", "abort") and not i.redelivery]
    report.check(
        "each person who asked got exactly one answer",
        all(answers.get(user) == 1 for user in asked),
        {
            "asked": len(asked),
            "answered_once": sum(answers.get(u) == 1 for u in asked),
            "unanswered": sum(not answers.get(u) for u in asked),
            "answered_twice_or_more": sum((answers.get(u) or 0) > 1 for u in asked),
        },
    )
    planned_replies = sum(1 for c in delivered if c["thread_ts"] and c["text"].startswith("Planned by"))
    approved_replies = sum(1 for c in delivered if c["thread_ts"] and c["text"].startswith("Approved by"))
    report.details["thread replies delivered"] = {"Planned by": planned_replies, "Approved by": approved_replies}
    if delivered:
        report.details["last message delivered, seconds after the first request"] = round(
            max(c["time"] for c in delivered) - min(c["time"] for c in calls), 1
        )
    retries = retry_findings(calls)
    report.details["rate limiting"] = retries
    report.check("a fifth of Slack calls answered 429", 0.15 <= retries["share_429"] <= 0.25, retries["share_429"])
    report.check("every retry waited its Retry-After", retries["retried_too_early"] == 0)
    report.check("every rate-limited message delivered in the end", retries["never_delivered"] == 0)
    return report


# -- setup -------------------------------------------------------------------------------------------------


def prepare(server: h.Chaosbot, workdir: Path, approvable: int) -> Setup:
    db = Database(server.database_url)
    try:
        core = RunCore.build(
            db, load_catalogue(workdir / "catalogue.yml"), load_policy(workdir / "policy.yml"), zone=ZoneInfo("UTC")
        )
        active = []
        for experiment in ACTIVE_EXPERIMENTS:
            run = core.transitions.plan(h.OWNER, PlanRequest(experiment, "staging", planned_start=datetime.now(UTC)))
            for approver in h.APPROVERS:
                core.transitions.approve(approver, run.id)
            status, _ = h.send(
                server.events_url, wire.slash_command(f"start RUN-{run.id}", h.OWNER, channel_id=h.CHANNEL)
            )
            if status != 200:
                raise RuntimeError(f"/chaos start RUN-{run.id} answered {status}")
            active.append(run.id)
        later = datetime.now(UTC) + timedelta(hours=1)
        waiting = [
            core.transitions.plan(h.OWNER, PlanRequest(ACTIVE_EXPERIMENTS[0], "staging", planned_start=later)).id
            for _ in range(approvable)
        ]
    finally:
        db.dispose()
    engine = create_engine(server.database_url)
    try:

        def running() -> bool:
            with engine.connect() as c:
                states = c.execute(
                    text("SELECT state FROM runs WHERE id IN (:a, :b)"), {"a": active[0], "b": active[1]}
                )
                return [s for (s,) in states] == ["running", "running"]

        h.wait_until(running, 30, "the two runs to be running")
        with engine.connect() as c:
            runs = c.execute(text("SELECT count(*) FROM runs")).scalar_one()
            seq = c.execute(text("SELECT seq FROM audit_head")).scalar_one()
    finally:
        engine.dispose()
    return Setup(active, waiting, runs, seq)


def settle(log_path: Path, quiet: float, deadline: float) -> None:
    """Wait until the fake Slack has received nothing for ``quiet`` seconds (retries sleep up to Retry-After)."""
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(read_slack_log(log_path))
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)


# -- report ------------------------------------------------------------------------------------------------


def print_and_write(
    args: argparse.Namespace, items: list[Interaction], report: Report, wall: float, complete: bool
) -> None:
    rows = []
    for kind in ("status", "plan", "approve", "abort", "abort-active", "all"):
        chosen = [i for i in items if (kind == "all" or i.kind == kind) and i.status == 200]
        if not chosen:
            continue
        stats = h.summary_ms([i.seconds for i in chosen])
        redelivered = sum(1 for i in chosen if i.redelivery)
        rows.append([kind, stats["count"], redelivered, stats["median_ms"], stats["p99_ms"], stats["max_ms"]])
    print(f"\nburst: {len(items)} interactions, {args.clients} clients, PostgreSQL + Redis, {wall:.1f} s of sending")
    print(h.markdown_table(["request", "acked", "of which redeliveries", "p50 ms", "p99 ms", "max ms"], rows))
    print()
    print(h.markdown_table(["check", "holds"], [[name, "yes" if ok else "NO"] for name, ok in report.checks.items()]))
    for name, detail in report.details.items():
        print(f"  {name}: {detail}")
    document = {
        "benchmark": "burst",
        "complete": complete,
        "machine": h.machine(),
        "settings": {
            "interactions": len(items),
            "clients": args.clients,
            "database": "postgres",
            "redis": True,
            "fake_slack_429_every": 5,
            "retry_after_s": RETRY_AFTER_SECONDS,
        },
        "ack_ms": {
            row[0]: dict(zip(["count", "redeliveries", "p50", "p99", "max"], row[1:], strict=True)) for row in rows
        },
        "sending_seconds": round(wall, 1),
        "checks": report.checks,
        "details": report.details,
        "all_checks_hold": complete and all(report.checks.values()),
    }
    h.write_json(args.output, document)
    print(f"JSON: {args.output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--approvable", type=int, default=40, help="runs planned beforehand, waiting for approvals")
    parser.add_argument("--max-seconds", type=float, default=180, help="the whole bench, setup to clean-up")
    parser.add_argument("--redis-url", default=REDIS_BENCH_URL)
    parser.add_argument("--output", type=Path, default=h.RESULTS / "burst.json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--serve-fake-slack", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (100 <= args.interactions <= 5000 and 1 <= args.clients <= 100):
        parser.error("keep it modest: 100 <= --interactions <= 5000, --clients <= 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_fake_slack is not None:
        return serve_fake_slack(args.serve_fake_slack)
    h.terminate_on_sigterm()
    began = time.monotonic()
    deadline = began + args.max_seconds - 15  # keep time to stop everything
    workdir = Path(tempfile.mkdtemp(prefix="chaosbot-bench-burst-"))
    slack_log = workdir / "slack-calls.jsonl"
    items: list[Interaction] = []
    report, wall, complete = Report(), 0.0, False
    try:
        with contextlib.ExitStack() as stack:
            slack_url = start_fake_slack(stack, slack_log)
            database_url = stack.enter_context(h.scratch_postgres())
            h.clear_redis_keys(args.redis_url)
            stack.callback(h.clear_redis_keys, args.redis_url)
            server = h.start_chaosbot(
                stack,
                workdir,
                slack_url=slack_url,
                database_url=database_url,
                catalogue=CATALOGUE,
                redis_url=args.redis_url,
            )
            setup = prepare(server, workdir, args.approvable)
            settle(slack_log, 1.0, time.monotonic() + 10)
            slack_log.write_text("")  # count only what the burst causes
            items = build(args, setup, random.Random(6))
            print(f"setup done in {time.monotonic() - began:.1f} s: runs {setup.active} active; sending {len(items)}")
            set_rate_limiting(slack_url, True)
            wall = fire(server.events_url, items, args.clients, deadline)
            settle(slack_log, RETRY_AFTER_SECONDS * 4 + 1, deadline)
            set_rate_limiting(slack_url, False)
            report = verify(items, setup, database_url, read_slack_log(slack_log))
            complete = time.monotonic() < deadline
            if not complete:
                report.check("finished within --max-seconds", False)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
    except Exception:
        traceback.print_exc()
    finally:
        print_and_write(args, items, report, wall, complete)
        print(f"total {time.monotonic() - began:.1f} s")
        if args.keep or not complete or not all(report.checks.values()):
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if complete and all(report.checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
