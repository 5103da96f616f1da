"""The `opsloop` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from storage.engine import DEFAULT_URL, create_engine
from storage.errors import StorageError
from storage.schema import current_revision, head_revision, setup


def _database_url(args: argparse.Namespace) -> str:
    return args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_URL


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = create_engine(_database_url(args))
    setup(engine)
    print(f"schema at revision {current_revision(engine)} ({engine.url.render_as_string()})")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    engine = create_engine(_database_url(args))
    current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else f"needs `opsloop db upgrade` to {head}"
    print(f"schema at revision {current or 'none'}: {state}")
    return 0 if current == head else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(_database_url(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsloop", description=__doc__)
    parser.add_argument(
        "--database-url", help=f"database URL (default: $DATABASE_URL or {DEFAULT_URL})"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="create, upgrade or inspect the database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or upgrade the schema").set_defaults(
        func=cmd_db_upgrade
    )
    db_sub.add_parser("status", help="show the schema revision").set_defaults(func=cmd_db_status)
    sub.add_parser(
        "demo", help="run a small gated workflow end to end through the database"
    ).set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `opsloop` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StorageError as exc:
        print(f"opsloop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
