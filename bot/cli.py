"""The `opsloop` command line: run workflows, answer gates, inspect runs, serve Slack.

Every command is thin: parse arguments, call the orchestrator, print. User
mistakes exit 2 with one line that says what was wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc

from bot import console, prompts
from bot.runtime import build_orchestrator, database, started, workflows
from bot.settings import Settings, SettingsError
from orchestrator.engine import Orchestrator
from orchestrator.errors import OrchestratorError
from orchestrator.protocol import RunView
from orchestrator.queries import (
    interaction,
    open_interactions,
    recent_runs,
    run_view,
    unfinished_runs,
)
from orchestrator.versions import WorkflowVersions
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.params import parse_assignments
from storage.engine import DEFAULT_URL, create_engine
from storage.errors import StorageError
from storage.schema import current_revision, head_revision, known_revisions, setup

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2
FOREVER = float("inf")


class Stop(Exception):
    """A user mistake the CLI reports in one line (exit 2)."""


def settings_of(args: argparse.Namespace) -> Settings:
    user = getattr(args, "user", None)
    if user is not None and not user.strip():
        raise Stop("--as needs a user id, like U012ABC")
    return Settings.from_env(
        database_url=args.database_url, workflows=args.workflows, user=getattr(args, "user", None)
    )


@contextmanager
def _following(
    args: argparse.Namespace, settings: Settings, *, recover: bool = False
) -> Iterator[Orchestrator]:
    """The orchestrator, reporting to the console unless --json; workflows are read once."""
    known = workflows(settings)
    with database(settings) as engine:
        front_end = None
        if not getattr(args, "json", False):
            versions = WorkflowVersions(engine, known)
            front_end = console.ConsoleFrontEnd(sys.stdout, functools.partial(_version, versions))
        orch = build_orchestrator(settings, engine, known, front_end=front_end)
        with started(orch, recover=recover):
            yield orch


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _finish(orch: Orchestrator, run_id: str, args: argparse.Namespace, user: str) -> int:
    """Wait until the run ends or needs a person; prompt on a terminal; print the result."""
    run = orch.wait(run_id, FOREVER)
    if _should_prompt(args):
        while run.status == "waiting" and prompts.answer_pending(orch, run_id, user):
            run = orch.wait(run_id, FOREVER)
    orch.close()  # let the workers finish reporting before the summary is printed
    run = orch.view(run_id)
    pending = open_interactions(orch.engine, run_id)
    if args.json:
        _print_json(console.run_json(run, pending))
    else:
        print()
        print(console.format_run(run, _workflow_or_none(orch, run), pending))
    return EXIT_RUN_FAILED if run.status in ("failed", "cancelled") else EXIT_OK


def _workflow_or_none(orch: Orchestrator, run: RunView) -> Workflow | None:
    """The run's own workflow version, for showing step kinds; None if it is gone."""
    try:
        return orch.workflow_of(run)
    except OrchestratorError:
        return None


def _version(versions: WorkflowVersions, run: RunView) -> Workflow | None:
    """What the console shows step kinds from: the run's own version, None if it is gone."""
    try:
        return versions.of(run.workflow, run.digest)
    except OrchestratorError:
        return None


def _should_prompt(args: argparse.Namespace) -> bool:
    if args.json or args.prompt is False:
        return False
    return bool(args.prompt) or sys.stdin.isatty()


# -- commands -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    params = parse_assignments([*args.param, *args.assignments])
    with _following(args, settings) as orch:
        run_id = orch.start_run(args.workflow, params, started_by=settings.user)
        return _finish(orch, run_id, args, settings.user)


def cmd_decide(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _following(args, settings) as orch:
        found = interaction(orch.engine, args.interaction)
        if found is None:
            raise Stop(f"no interaction {args.interaction!r}; `opsloop pending` lists open ones")
        answer = prompts.parse_answer(found, args.answer)
        orch.watch_run(found.run_id)
        view = orch.decide(found.id, settings.user, answer, args.comment)
        if view.status == "pending" and not args.json:
            print(f"recorded; {view.step_id} still needs more approvals")
        return _finish(orch, found.run_id, args, settings.user)


def cmd_runs(args: argparse.Namespace) -> int:
    engine = _engine(settings_of(args))
    summaries = recent_runs(engine, args.limit)
    if args.json:
        _print_json([vars(s) for s in summaries])
    else:
        print(console.format_runs(summaries))
    return EXIT_OK


def cmd_pending(args: argparse.Namespace) -> int:
    engine = _engine(settings_of(args))
    if args.run is not None:
        run_view(engine, args.run)  # NotFound, saying where to look, for an unknown run
    pending = open_interactions(engine, args.run)
    if args.json:
        _print_json([console.interaction_json(i) for i in pending])
    elif not pending:
        print("nothing is waiting for a person")
    else:
        print("\n".join(f"run {i.run_id}  {console.format_interaction(i)}" for i in pending))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    engine = _engine(settings)
    run = run_view(engine, args.run)
    pending = open_interactions(engine, run.id)
    if args.json:
        _print_json(console.run_json(run, pending))
        return EXIT_OK
    try:  # the run's own version, for step kinds
        workflow = WorkflowVersions(engine, workflows(settings)).of(run.workflow, run.digest)
    except (OrchestratorError, SettingsError):
        workflow = None  # `show` still works when the workflow files moved or broke
    print(console.format_run(run, workflow, pending))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _following(args, settings) as orch:
        run = orch.cancel(args.run, settings.user)
        if args.json:
            _print_json(console.run_json(run, []))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _following(args, settings) as orch:
        orch.watch_run(args.run)
        orch.retry(args.run, args.step, settings.user)
        return _finish(orch, args.run, args, settings.user)


def cmd_rerun(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with _following(args, settings) as orch:
        run_id = orch.rerun(args.run, settings.user)
        return _finish(orch, run_id, args, settings.user)


def cmd_resume(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    engine = _engine(settings)
    unfinished = unfinished_runs(engine)
    with _following(args, settings, recover=True) as orch:
        results = [orch.wait(run_id, FOREVER) for run_id in unfinished]
    if args.json:
        _print_json([{"run_id": r.id, "status": r.status} for r in results])
    elif not results:
        print("no unfinished runs")
    else:
        print(console.format_table(["run", "workflow", "status"],
                                   [[r.id, r.workflow, r.status] for r in results]))  # fmt: skip
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from orchestrator.workflow.loader import validate_paths

    paths = args.paths or [str(settings_of(args).check_workflows_dir())]
    problems = validate_paths(paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s); nothing invalid can be run", file=sys.stderr)
        return EXIT_USAGE
    print(f"ok: {', '.join(paths)}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from bot.plan import format_plan

    settings = settings_of(args)
    known = workflows(settings)
    if args.workflow not in known:
        raise Stop(f"no workflow named {args.workflow!r}; known workflows: {', '.join(known)}")
    print(format_plan(known[args.workflow]))
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = create_engine(settings_of(args).database_url)
    setup(engine)
    print(f"schema at revision {current_revision(engine)} ({engine.url.render_as_string()})")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    engine = create_engine(settings_of(args).database_url)
    current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else f"needs `opsloop db upgrade` to {head}"
    if current is not None and current not in known_revisions():
        state = "written by a newer opsloop release: run that release, not this one"
    print(f"schema at revision {current or 'none'}: {state}")
    return EXIT_OK if current == head else EXIT_RUN_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.settings import SlackSettings
    from bot.slack.server import serve

    settings = settings_of(args)
    slack = SlackSettings.from_env(host=args.host, port=args.port)
    settings.check_workflows_dir()
    return serve(settings, slack)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(main, settings_of(args))


def _engine(settings: Settings) -> Any:
    engine = create_engine(settings.database_url)
    setup(engine)
    return engine


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
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--as", dest="user", metavar="USER",
                        help="who you are, e.g. U012ABC ($OPSLOOP_USER)")  # fmt: skip
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print a machine-readable result")
    waiting = argparse.ArgumentParser(add_help=False, parents=[output])
    waiting.add_argument("--prompt", action=argparse.BooleanOptionalAction, default=None,
                         help="ask for gate answers (default: on a terminal)")  # fmt: skip

    parser = argparse.ArgumentParser(prog="opsloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help: str, *parents: argparse.ArgumentParser) -> Any:
        cmd = sub.add_parser(name, help=help, description=help, parents=[common, *parents])
        cmd.set_defaults(func=func)
        return cmd

    run = add("run", cmd_run, "start a workflow and follow it", acting, waiting)
    run.add_argument("workflow")
    run.add_argument("assignments", nargs="*", metavar="key=value", help="a parameter")
    run.add_argument("-p", "--param", action="append", default=[], metavar="key=value",
                     help="a parameter (repeatable)")  # fmt: skip
    decide = add("decide", cmd_decide, "answer a gate and follow the run", acting, waiting)
    decide.add_argument("interaction", help="its id, e.g. i-3f2a9c1b0d4e")
    decide.add_argument("answer", nargs="+",
                        help="approve|reject, an option, or field=value ...")  # fmt: skip
    decide.add_argument("--comment", help="a reason, kept in the audit log")
    add("runs", cmd_runs, "list recent runs", output).add_argument(
        "--limit", type=_limit, default=20, help="how many (1-1000, default 20)"
    )
    add("pending", cmd_pending, "list what waits for a person", output).add_argument(
        "run", nargs="?", help="only this run"
    )
    add("show", cmd_show, "show one run", output).add_argument("run")
    add("cancel", cmd_cancel, "cancel a run", acting, output).add_argument("run")
    retry = add("retry", cmd_retry, "retry a failed step and what follows it", acting, waiting)
    retry.add_argument("run")
    retry.add_argument("step", nargs="?", help="default: every failed step")
    add("rerun", cmd_rerun, "start a run again with the same params", acting, waiting).add_argument(
        "run"
    )
    add("resume", cmd_resume, "continue every unfinished run (after a crash)", output)
    add("validate", cmd_validate, "check workflow files").add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories (default: ./workflows)"
    )
    add("plan", cmd_plan, "print a workflow's DAG and who its gates ask").add_argument("workflow")
    db = add("db", None, "create, upgrade or inspect the database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or upgrade the schema").set_defaults(
        func=cmd_db_upgrade
    )
    db_sub.add_parser("status", help="show the schema revision").set_defaults(func=cmd_db_status)
    serve = add("serve", cmd_serve, "run the Slack bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    serve.add_argument("--host", help="$HOST, default 0.0.0.0")
    serve.add_argument("--port", type=int, help="$PORT, default 3000")
    add("demo", cmd_demo, "run the example workflows end to end (the README's main job)")
    return parser


# Commands whose last positional takes any number of words: which attribute holds them.
_OPEN_ENDED = {"run": "assignments", "decide": "answer"}


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
    """Entry point of the `opsloop` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _take_late_words(parser, args, extra)
    try:
        return args.func(args)
    except (Stop, SettingsError, OrchestratorError, StorageError) as exc:
        print(f"opsloop: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sa_exc.DatabaseError as exc:  # OperationalError, "file is not a database", ...
        reason = str(exc.orig or exc).strip().splitlines()[0]
        hint = "check DATABASE_URL (or --database-url) and that the database server is running"
        print(f"opsloop: cannot use the database ({reason}); {hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("opsloop: interrupted; `opsloop resume` continues unfinished runs", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `opsloop show RUN | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
