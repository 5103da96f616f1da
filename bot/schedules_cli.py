"""`opsloop schedules`: list schedules, pause and resume them, start one's run now.

The list reads the database only (no orchestrator, no workflow files), so it works
while `serve` runs elsewhere. Pause and resume are audited with who (`--as`) and why;
`run` starts the run exactly as a fire would and follows it like `opsloop run`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot import console
from bot.cli_io import EXIT_OK, open_reader, settings_of
from bot.settings import Settings

if TYPE_CHECKING:  # the engine and its schedules are imported only by the commands using them
    from orchestrator.engine import Orchestrator
    from orchestrator.schedule_list import ScheduleView

_HEADER = ["id", "workflow", "cron", "timezone", "next (local)", "next (UTC)", "last fire",
           "last run", "missed", "state"]  # fmt: skip


def register(sub: Any, *parents: argparse.ArgumentParser) -> None:
    """Add `schedules` to the `opsloop` parser; `parents`: common, acting and output options."""
    cmd = sub.add_parser("schedules", help="list, pause, resume or start schedules",
                         description=__doc__, parents=list(parents))  # fmt: skip
    cmd.set_defaults(func=cmd_list)
    actions = cmd.add_subparsers(dest="schedules_command", metavar="ACTION")
    for name, func, text in (("pause", cmd_pause, "stop a schedule firing until resumed"),
                             ("resume", cmd_resume, "let a paused schedule fire again"),
                             ("run", cmd_run, "start a schedule's run now")):  # fmt: skip
        action = actions.add_parser(name, help=text, description=text, parents=list(parents))
        action.add_argument("id", help="the schedule's id, e.g. nightly/1")
        action.set_defaults(func=func)
        if name == "pause":
            action.add_argument("--reason", default="", help="why, kept in the audit log")


def cmd_list(args: argparse.Namespace) -> int:
    from orchestrator.schedule_list import list_schedules

    views = list_schedules(open_reader(settings_of(args)))
    if args.json:
        print(json.dumps([schedule_json(v) for v in views], indent=2))
    elif not views:
        print("no schedules yet: `opsloop serve` syncs them from the workflow files' schedules:")
    else:
        print(console.format_table(_HEADER, [_row(v) for v in views]))
    return EXIT_OK


@contextmanager
def _policy(settings: Settings) -> Iterator[Orchestrator]:
    """An orchestrator that is never started: its access policy and audit, nothing runs
    (a running `serve` fires a resumed schedule at its next check)."""
    from bot.runtime import build_orchestrator, database

    with database(settings) as engine:
        orch = build_orchestrator(settings, engine, {})
        try:
            yield orch
        finally:
            orch.close()


def cmd_pause(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _policy(settings) as orch:
        view = orch.pause_schedule(args.id, settings.user, args.reason)
    return _done(args, view, f"paused {view.id}")


def cmd_resume(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _policy(settings) as orch:
        view = orch.resume_schedule(args.id, settings.user)
    return _done(args, view, f"resumed {view.id}; next fire {_local(view)}")


def cmd_run(args: argparse.Namespace) -> int:
    from bot.run_commands import finish, following
    from orchestrator.schedules import sync

    settings = settings_of(args)
    with following(args, settings) as orch:
        # Adds what the files have new; never disables (another directory may hold more).
        sync(orch.engine, orch.workflows, orch.clock.now(), settings.user, prune=False)
        run_id = orch.run_schedule_now(args.id, settings.user)
        return finish(orch, run_id, args, settings.user)


def _done(args: argparse.Namespace, view: ScheduleView, text: str) -> int:
    print(json.dumps(schedule_json(view), indent=2) if args.json else text)
    return EXIT_OK


# ---------------------------------------------------------------- rendering


def schedule_json(view: ScheduleView) -> dict[str, Any]:
    """A schedule as `--json` prints it: times in ISO 8601, the next fire also local."""
    data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(view).items()}
    data["next_fire_local"] = _local(view) if view.next_fire_at else None
    return data


def _row(view: ScheduleView) -> Sequence[str]:
    last_run = f"{view.last_run_id} {view.last_run_status or ''}" if view.last_run_id else "-"
    return [view.id, view.workflow, view.cron, view.timezone, _local(view),
            _utc(view.next_fire_at), _utc(view.last_fired_at), last_run.strip(),
            str(view.missed), _state(view)]  # fmt: skip


def _state(view: ScheduleView) -> str:
    if not view.enabled:
        return "removed"
    if view.paused:
        return f"paused by {view.paused_by}" + (
            f": {view.paused_reason}" if view.paused_reason else ""
        )
    return "active"


def _local(view: ScheduleView) -> str:
    if view.next_fire_at is None or not view.enabled or view.paused:
        return "-"
    return f"{view.next_fire_at.astimezone(ZoneInfo(view.timezone)):%Y-%m-%d %H:%M %Z}"


def _utc(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%MZ}"
