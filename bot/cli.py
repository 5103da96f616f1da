"""The `opsloop` command line: parse, dispatch, and turn errors into one line.

The commands live in bot/run_commands.py (those that act on runs) and
bot/read_commands.py (those that only read); `serve` and `demo` are here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exc as sa_exc

from bot import audit_cli, interrupt, logging_setup, report_cli, schedules_cli
from bot.cli_io import EXIT_OK, EXIT_USAGE, Stop, settings_of
from bot.interrupt import Interrupted
from bot.settings import SettingsError, SlackSettings
from orchestrator.errors import OrchestratorError, UnknownWorkflow
from storage.engine import DEFAULT_URL
from storage.errors import StorageError

DESCRIPTION = """The `opsloop` command line: run workflows, answer gates, inspect runs, serve Slack.

Every command is thin: parse arguments, call the orchestrator, print. User
mistakes exit 2 with one line that says what was wrong and how to fix it."""


def cmd_serve(args: argparse.Namespace) -> int:
    # Only `serve` needs Slack: the other commands start without importing it.
    settings = settings_of(args)
    if args.no_slack:
        from bot.headless import serve_headless

        settings.check_workflows_dir()
        return serve_headless(settings)
    from bot.slack.server import serve

    slack = SlackSettings.from_env(host=args.host, port=args.port)
    settings.check_workflows_dir()
    return serve(settings, slack)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(main, settings_of(args))


def _lazy(module: str, name: str) -> Any:
    """A command imported when it runs: `opsloop runs` must not pay for LangGraph."""

    def command(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    command.__name__ = name
    return command


act = argparse.Namespace(**{n: _lazy("bot.run_commands", n) for n in (
    "cmd_run", "cmd_decide", "cmd_cancel", "cmd_retry", "cmd_rerun", "cmd_resume")})  # fmt: skip
read = argparse.Namespace(**{n: _lazy("bot.read_commands", n) for n in (
    "cmd_runs", "cmd_pending", "cmd_show", "cmd_validate", "cmd_plan", "cmd_db_upgrade",
    "cmd_db_status")})  # fmt: skip


# -- parser ---------------------------------------------------------------------


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 1000")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help=f"$DATABASE_URL, default {DEFAULT_URL}")
    common.add_argument("--workflows", help="$OPSLOOP_WORKFLOWS, default ./workflows")
    parser = argparse.ArgumentParser(prog="opsloop", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help: str, *parents: argparse.ArgumentParser) -> Any:
        cmd = sub.add_parser(name, help=help, description=help, parents=[common, *parents])
        cmd.set_defaults(func=func)
        return cmd

    _add_acting(add)
    _add_reading(add)
    schedules_cli.register(sub, common, _acting(), _output())
    report_cli.register(sub, common, _output())
    audit_cli.register(sub, common, _output())
    serve = add("serve", cmd_serve, "run the Slack bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    serve.add_argument("--host", help="$HOST, default 0.0.0.0")
    serve.add_argument("--port", type=int, help="$PORT, default 3000")
    serve.add_argument(
        "--no-slack", action="store_true",
        help="run the engine alone: schedules, deadlines, recovery; no Slack",
    )  # fmt: skip
    add("demo", cmd_demo, "run the example workflows end to end (the README's main job)")
    return parser


def _output() -> argparse.ArgumentParser:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print a machine-readable result")
    return output


def _acting() -> argparse.ArgumentParser:
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--as", dest="user", metavar="USER",
                        help="who you are, e.g. U012ABC ($OPSLOOP_USER)")  # fmt: skip
    return acting


def _add_acting(add: Any) -> None:
    """The commands that act on runs (bot/run_commands.py)."""
    acting = _acting()
    waiting = argparse.ArgumentParser(add_help=False, parents=[_output()])
    waiting.add_argument("--prompt", action=argparse.BooleanOptionalAction, default=None,
                         help="ask for gate answers (default: on a terminal)")  # fmt: skip
    run = add("run", act.cmd_run, "start a workflow and follow it", acting, waiting)
    run.add_argument("workflow")
    run.add_argument("assignments", nargs="*", metavar="key=value", help="a parameter")
    run.add_argument("-p", "--param", action="append", default=[], metavar="key=value",
                     help="a parameter (repeatable)")  # fmt: skip
    decide = add("decide", act.cmd_decide, "answer a gate and follow the run", acting, waiting)
    decide.add_argument("interaction", help="its id, e.g. i-3f2a9c1b0d4e")
    decide.add_argument("answer", nargs="+",
                        help="approve|reject, an option, or field=value ...")  # fmt: skip
    decide.add_argument("--comment", help="a reason, kept in the audit log")
    add("cancel", act.cmd_cancel, "cancel a run", acting, _output()).add_argument("run")
    retry = add("retry", act.cmd_retry, "retry a failed step and what follows it", acting,
                waiting)  # fmt: skip
    retry.add_argument("run")
    retry.add_argument("step", nargs="?", help="default: every failed step")
    add("rerun", act.cmd_rerun, "start a run again with the same params", acting,
        waiting).add_argument("run")  # fmt: skip
    add("resume", act.cmd_resume, "continue every unfinished run (after a crash)", _output())


def _add_reading(add: Any) -> None:
    """The commands that only read or check (bot/read_commands.py)."""
    add("runs", read.cmd_runs, "list recent runs", _output()).add_argument(
        "--limit", type=_limit, default=20, help="how many (1-1000, default 20)"
    )
    add("pending", read.cmd_pending, "list what waits for a person", _output()).add_argument(
        "run", nargs="?", help="only this run"
    )
    add("show", read.cmd_show, "show one run", _output()).add_argument("run")
    add("validate", read.cmd_validate, "check workflow files").add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories (default: ./workflows)"
    )
    plan = add(
        "plan",
        read.cmd_plan,
        "print a workflow's DAG and who its gates ask; with "
        "key=value params, which steps a run would run, skip or wait at (dry run)",
    )
    plan.add_argument("workflow")
    plan.add_argument("assignments", nargs="*", metavar="key=value", help="a parameter")
    plan.add_argument("-p", "--param", action="append", default=[], metavar="key=value",
                      help="a parameter (repeatable)")  # fmt: skip
    db = add("db", None, "create, upgrade or inspect the database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    # The options again after the action (`db upgrade --database-url X`); SUPPRESS keeps
    # a value given before it (`db --database-url X upgrade`) from being reset to None.
    late = argparse.ArgumentParser(add_help=False)
    late.add_argument("--database-url", default=argparse.SUPPRESS, help="$DATABASE_URL")
    late.add_argument("--workflows", default=argparse.SUPPRESS, help="$OPSLOOP_WORKFLOWS")
    db_sub.add_parser("upgrade", help="create or upgrade the schema",
                      parents=[late]).set_defaults(func=read.cmd_db_upgrade)  # fmt: skip
    db_sub.add_parser("status", help="show the schema revision",
                      parents=[late]).set_defaults(func=read.cmd_db_status)  # fmt: skip


# Commands whose last positional takes any number of words: which attribute holds them.
_OPEN_ENDED = {"run": "assignments", "decide": "answer", "plan": "assignments"}


def _take_late_words(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """Give words typed after an option to the list they belong to.

    argparse fills a `nargs="*"` positional from one run of words only, so in
    `opsloop run deploy --json service=api` it leaves `service=api` over."""
    target = _OPEN_ENDED.get(args.command)
    if not extra:
        return
    if target is None or any(word.startswith("-") for word in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    getattr(args, target).extend(extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `opsloop` console script (argv None: the process's own arguments,
    and the logging set-up stays for what logs while the process exits). Called in-process
    with `argv` (the demo, tests), it leaves logging as it found it."""
    if argv is None:
        return _main(argv)
    with logging_setup.restored():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _take_late_words(parser, args, extra)
    try:
        logging_setup.configure(
            default_level="INFO" if args.command == "serve" else "WARNING",
            secrets=logging_setup.secrets_of(os.environ, getattr(args, "database_url", None)),
        )
        return args.func(args)
    except UnknownWorkflow as exc:  # where the workflows are, not all their names
        where = settings_of(args).workflows_dir
        print(f"opsloop: {exc} (the workflows are the files in {where})", file=sys.stderr)
        return EXIT_USAGE
    except (Stop, SettingsError, OrchestratorError, StorageError) as exc:
        print(f"opsloop: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sa_exc.DatabaseError as exc:  # OperationalError, "file is not a database", ...
        reason = str(exc.orig or exc).strip().splitlines()[0]
        hint = "check DATABASE_URL (or --database-url) and that the database server is running"
        print(f"opsloop: cannot use the database ({reason}); {hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside a run (bot/interrupt.py handles those): nothing to resume
        print("opsloop: interrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:  # Ctrl-C while following a run: said what it stopped
        return interrupt.report(exc)
    except BrokenPipeError:  # `opsloop show RUN | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
