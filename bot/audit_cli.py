"""`opsloop audit [RUN] [--since 7d] [--actor U..] [--as U..] [--json]`: the audit log.

The CLI is the console of whoever holds the database credentials, so without `--as` it
shows every entry. `--as USER` shows what that person may see under the access policy,
never more: a name typed on the command line must not widen what is shown.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import Any

from bot.cli_io import EXIT_OK, Stop, open_reader, print_json, settings_of

_AGO = re.compile(r"\s*(\d+)\s*(s|m|min|h|d|w)\s*")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now: datetime) -> datetime:
    """ "7d", "12h", "30m", "2w" ago, or an ISO date/time (UTC unless it says otherwise)."""
    if match := _AGO.fullmatch(text.lower()):
        return now - timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Stop(f"--since {text!r} is neither a duration nor a date; write 7d, 12h, 30m, "
                   "2w or 2026-01-31T09:00") from None  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def cmd_audit(args: argparse.Namespace) -> int:
    # Imported here: `opsloop --help` and the other commands do not pay for them.
    from bot.audit_text import audit_json, format_audit
    from bot.runtime import clock_of, static_directory
    from orchestrator.access import AccessPolicy, parse_admins
    from orchestrator.audit import RunVisibility, audit_entries
    from orchestrator.queries import run_view

    settings = settings_of(args)
    engine = open_reader(settings)  # read-only: never writes, never migrates (issue 16)
    if args.run is not None:
        run_view(engine, args.run)  # NotFound, saying where to look, for an unknown run
    now = clock_of(settings).now()
    since = None if args.since is None else parse_since(args.since, now)
    records = audit_entries(engine, run_id=args.run, since=since, actor=args.actor)
    if args.user is not None:
        policy = AccessPolicy(parse_admins(settings.admins), static_directory(settings))
        records = RunVisibility(engine, policy).visible(args.user, records)
    if args.json:
        print_json([audit_json(r) for r in records])
    else:
        print(format_audit(records))
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser) -> None:
    """Add `audit` to the CLI's subcommands."""
    audit = sub.add_parser("audit", parents=[common, output],
                           help="who did what: starts, answers, refusals, cancels, ...",
                           description=__doc__.splitlines()[0])  # fmt: skip
    audit.set_defaults(func=cmd_audit)
    audit.add_argument("run", nargs="?", help="only this run")
    audit.add_argument("--since", metavar="WHEN", help="only newer entries: 7d, 12h, or a date")
    audit.add_argument("--actor", metavar="USER", help="only what this person (or system) did")
    audit.add_argument("--as", dest="user", metavar="USER",
                       help="show only what USER may see (default: everything)")  # fmt: skip
