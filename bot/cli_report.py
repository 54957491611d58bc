"""``chaosbot report``: a run's retrospective as Markdown, a month's or a quarter's summary as md, csv or json.

chaosbot report run RUN-12 [--format md|ctk-journal]
chaosbot report month 2026-11 [--format md|csv|json]
chaosbot report quarter 2026-Q4 [--format md|csv|json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.errors import DomainError
from bot.reports.periods import PeriodKind, parse_period
from bot.settings import load_settings
from bot.vocabulary import parse_run_label

# The database, catalogue and report modules are imported when a report runs: building the parser stays
# light (``chaosbot serve``'s master process parses the same command line).

FORMATS = ("md", "csv", "json")


def add_report_commands(commands: Any) -> None:
    """Register ``report run|month|quarter`` on the CLI's subcommands."""
    report = commands.add_parser("report", help="a run's retrospective, or a month's or quarter's summary")
    kinds = report.add_subparsers(title="report")
    run = kinds.add_parser("run", help="a run's retrospective as Markdown (for runbooks and the change log)")
    run.add_argument("run", help="RUN-n")
    run.add_argument("--format", choices=["md", "ctk-journal"], default="md", help="ctk-journal: Chaos Toolkit's JSON")
    run.set_defaults(handler=cmd_report_run)
    for kind, example in ((PeriodKind.MONTH, "2026-11"), (PeriodKind.QUARTER, "2026-Q4")):
        period = kinds.add_parser(kind.value, help=f"the {kind.value}'s summary, such as {example}")
        period.add_argument("period", help=example)
        period.add_argument("--format", choices=FORMATS, default="md")
        period.set_defaults(handler=cmd_report_period, kind=kind)


def cmd_report_run(args: argparse.Namespace) -> int:
    run_id = parse_run_label(args.run)
    if run_id is None:
        print(f"chaosbot: {args.run!r} is not a run; use RUN-n, such as RUN-12", file=sys.stderr)
        return 2
    from bot.actions.retrospective import action_item_lines
    from bot.context import build_context
    from bot.retro.markdown import run_report

    settings = load_settings()
    context = build_context(settings)
    try:
        if args.format == "ctk-journal":
            from bot.retro.journal import run_journal

            print(json.dumps(run_journal(context.db, run_id, zone=settings.zone), indent=2))
        else:
            print(run_report(context.db, run_id, zone=settings.zone, action_items=action_item_lines), end="")
    except DomainError as exc:
        print(f"chaosbot: {exc.message}", file=sys.stderr)
        return 1
    finally:
        context.db.dispose()
    return 0


def cmd_report_period(args: argparse.Namespace) -> int:
    try:
        period = parse_period(args.period)
    except DomainError as exc:
        print(f"chaosbot: {exc.message}", file=sys.stderr)
        return 2
    if period.kind is not args.kind:
        other = "quarter" if period.kind is PeriodKind.QUARTER else "month"
        print(f"chaosbot: {args.period} is a {other}; use `chaosbot report {other} {args.period}`", file=sys.stderr)
        return 2
    from bot.context import build_context
    from bot.reports.flows import Reports

    settings = load_settings()
    context = build_context(settings)
    try:
        reports = Reports(
            context.db,
            experiments=[experiment.id for experiment in context.catalogue.experiments],
            reporting=context.policy.reporting,
            zone=settings.zone,
        )
        print(reports.text(period, args.format), end="")
    finally:
        context.db.dispose()
    return 0
