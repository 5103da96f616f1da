"""What every `opsloop` command shares: exit codes, the one-line user mistake (`Stop`),
settings from the arguments, and the JSON it prints."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy.engine import Engine

from bot.settings import Settings
from storage.engine import create_engine
from storage.schema import check_schema, current_revision, setup

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2
FOREVER = float("inf")  # how long a command follows a run


class Stop(Exception):
    """A user mistake the CLI reports in one line (exit 2)."""


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings the flags ask for, over the environment."""
    user = getattr(args, "user", None)
    if user is not None and not user.strip():
        raise Stop("--as needs a user id, like U012ABC")
    return Settings.from_env(
        database_url=args.database_url, workflows=args.workflows, user=getattr(args, "user", None)
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def open_reader(settings: Settings) -> Engine:
    """The database for a command that reads it: never migrated (`opsloop report` may
    write its cache of closed days, `report_day`; nothing else is written); refused with a
    hint when its schema is missing or not this release's."""
    engine = create_engine(settings.database_url)
    check_schema(engine)
    return engine


def open_engine(settings: Settings) -> Engine:
    """The database for a command that acts without an orchestrator: a new database gets
    its schema; one at an older revision is refused (only `db upgrade`, `serve` migrate)."""
    engine = create_engine(settings.database_url)
    if current_revision(engine) is None:
        setup(engine)
    else:
        check_schema(engine)
    return engine
