"""The ``chaosbot`` command line: database, catalogue, audit and export tasks, and the entry points."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.errors import ConfigurationError
from bot.settings import load_settings

# The tasks import what they use when they run: ``chaosbot serve``'s gunicorn master starts from here and
# keeps resident everything imported before it forks its worker (see bot/slack/serve.py).

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except Exception as exc:
        if not isinstance(exc, _said_to_the_user()):
            raise
        print(f"chaosbot: {exc}", file=sys.stderr)
        return 1


def _said_to_the_user() -> tuple[type[Exception], ...]:
    from bot.catalogue.service import CatalogueError
    from bot.policy.service import PolicyError
    from storage.db import NotMigratedError

    return (ConfigurationError, CatalogueError, PolicyError, NotMigratedError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaosbot", description="Chaos experiments, run from Slack.")
    commands = parser.add_subparsers(title="commands")

    db = commands.add_parser("db", help="database tasks").add_subparsers(title="db commands")
    db.add_parser("upgrade", help="create or migrate the schema").set_defaults(handler=cmd_db_upgrade)

    catalogue = commands.add_parser("catalogue", help="experiment catalogue").add_subparsers(title="catalogue")
    validate = catalogue.add_parser("validate", help="check a catalogue file (default: the configured one)")
    validate.add_argument("file", nargs="?", type=Path)
    validate.set_defaults(handler=cmd_catalogue_validate)
    draft = catalogue.add_parser("import", help="draft a catalogue entry from a Chaos Toolkit experiment")
    draft.add_argument("experiment", type=Path, help="the experiment file (JSON or YAML)")
    draft.add_argument("--id", dest="experiment_id", help="the entry's id (default: the next free CE-NN)")
    draft.add_argument("--catalogue", type=Path, help="the catalogue file (default: CHAOSBOT_CATALOGUE)")
    draft.add_argument("--write", action="store_true", help="append the entry to the catalogue file")
    draft.set_defaults(handler=cmd_catalogue_import)

    audit_cmd = commands.add_parser("audit", help="audit log").add_subparsers(title="audit")
    audit_cmd.add_parser("verify", help="check the hash chain").set_defaults(handler=cmd_audit_verify)

    export = commands.add_parser("export", help="write runs or audit events for the change log")
    export.add_argument("what", nargs="?", choices=["runs", "events"], default="runs")
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_export)

    serve = commands.add_parser("serve", help="run the Slack app (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    serve.set_defaults(handler=_entry("bot.slack.serve", "main"))

    shell = commands.add_parser("shell", help="the same commands in a terminal, no Slack workspace needed")
    shell.add_argument("--as", dest="user", default="oliver", help="who you are (a Slack user id)")
    shell.add_argument("--script", type=Path, help="read commands from a file instead of the terminal")
    shell.add_argument(
        "--demo-target",
        action="store_true",
        help="start the demo share-link portal (and its Redis cache) on 127.0.0.1 and use the demo catalogue",
    )
    shell.set_defaults(handler=_entry("bot.console.shell", "main"))

    from bot.cli_report import add_report_commands  # light: the reports' own imports wait until one runs

    add_report_commands(commands)
    return parser


def _entry(module: str, name: str) -> Command:
    """Import the entry point only when used: the CLI's quick tasks need no Slack or web server."""

    def run(args: argparse.Namespace) -> int:
        from importlib import import_module

        return int(getattr(import_module(module), name)(args))

    return run


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from storage.db import redact_url
    from storage.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database at {redact_url(settings.database_url)} is up to date")
    return 0


def cmd_catalogue_validate(args: argparse.Namespace) -> int:
    from bot.catalogue.service import load_catalogue

    settings = load_settings()
    path = args.file or settings.catalogue_path
    catalogue = load_catalogue(path)
    for experiment in catalogue.experiments:
        environments = ", ".join(experiment.environments)
        print(f"{experiment.id}  {experiment.title}  [{environments}]  via {experiment.fault.adapter}")
    print(f"{len(catalogue.experiments)} experiments valid ({path or 'bundled playbook catalogue'})")
    return 0


def cmd_catalogue_import(args: argparse.Namespace) -> int:
    from adapters.base import AdapterError
    from bot.catalogue.ctk_import import append_entry, draft_entry, list_indent
    from bot.catalogue.service import load_catalogue

    path: Path | None = args.catalogue or load_settings().catalogue_path
    taken = {e.id for e in load_catalogue(path).experiments}
    experiment_id = args.experiment_id or next(f"CE-{n:02d}" for n in range(1, 1000) if f"CE-{n:02d}" not in taken)
    if experiment_id in taken:
        print(f"chaosbot: the catalogue already has {experiment_id}; choose another --id", file=sys.stderr)
        return 2
    try:
        entry = draft_entry(args.experiment, experiment_id=experiment_id, catalogue_path=path, indent=list_indent(path))
    except AdapterError as exc:
        print(f"chaosbot: {exc.message}", file=sys.stderr)
        return 1
    if not args.write:
        print(entry, end="")
        return 0
    if path is None:
        print("chaosbot: --write needs a catalogue file: --catalogue FILE or CHAOSBOT_CATALOGUE", file=sys.stderr)
        return 2
    append_entry(path, entry)
    load_catalogue(path)  # the appended entry must load: Chaos Toolkit's validation and chaosbot's
    print(f"appended {experiment_id} to {path}; review the lines marked REVIEW", file=sys.stderr)
    return 0


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    from bot.audit import service as audit
    from storage.db import Database

    settings = load_settings()
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    db.check_migrated()
    with db.transaction() as session:
        report = audit.verify(session)
    if report.ok:
        print(f"audit chain intact: {report.checked} events verified")
        return 0
    print(f"AUDIT CHAIN BROKEN at row {report.seq}: {report.problem} ({report.checked} rows verified before it)")
    return 3


def cmd_export(args: argparse.Namespace) -> int:
    from bot.audit import service as audit
    from bot.context import build_context
    from bot.export import export_rows

    context = build_context(load_settings())
    rows = export_rows(context.db, args.what)
    if args.output:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            audit.write_rows(rows, out, args.format)
        print(f"wrote {len(rows)} {args.what} to {args.output}", file=sys.stderr)
    else:
        audit.write_rows(rows, sys.stdout, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
