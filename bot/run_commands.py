"""The `opsloop` commands that act on runs and follow them: run, decide, cancel, retry,
rerun, resume. Each builds the orchestrator, acts, and follows the run to its end or to
the next question, reporting to the console (or, with --json, printing the result)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bot import console, prompts
from bot.cli_io import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    FOREVER,
    Stop,
    open_engine,
    print_json,
    settings_of,
)
from bot.interrupt import stop_on_interrupt
from bot.runtime import build_orchestrator, database, started, workflows_for_runs
from bot.settings import Settings
from orchestrator.engine import Orchestrator
from orchestrator.errors import OrchestratorError
from orchestrator.protocol import RunView
from orchestrator.queries import interaction, open_interactions, unfinished_runs
from orchestrator.recovery import cannot_continue
from orchestrator.versions import WorkflowVersions
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.params import parse_assignments


@contextmanager
def following(
    args: argparse.Namespace, settings: Settings, *, recover: bool = False,
    starting: str | None = None,
) -> Iterator[Orchestrator]:  # fmt: skip
    """The orchestrator, reporting to the console unless --json; workflows are read once.
    Invalid workflow files are skipped, unless the one `starting` is about to start."""
    known = workflows_for_runs(settings, starting)
    with database(settings) as engine:
        front_end = None
        if not getattr(args, "json", False):
            versions = WorkflowVersions(engine, known)
            front_end = console.ConsoleFrontEnd(sys.stdout, functools.partial(_version, versions))
        orch = build_orchestrator(settings, engine, known, front_end=front_end)
        with started(orch, recover=recover):
            try:
                yield orch
            except KeyboardInterrupt:  # the first Ctrl-C: say what runs, stop cleanly
                raise stop_on_interrupt(orch) from None


def finish(orch: Orchestrator, run_id: str, args: argparse.Namespace, user: str) -> int:
    """Wait until the run ends or needs a person; prompt on a terminal; print the result."""
    run = orch.wait(run_id, FOREVER)
    if _should_prompt(args):
        while run.status == "waiting" and prompts.answer_pending(orch, run_id, user):
            run = orch.wait(run_id, FOREVER)
    orch.close()  # let the workers finish reporting before the summary is printed
    run = orch.view(run_id)
    pending = open_interactions(orch.engine, run_id)
    if args.json:
        print_json(console.run_json(run, pending))
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
    prompt = getattr(args, "prompt", None)
    if args.json or prompt is False:
        return False
    return bool(prompt) or sys.stdin.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    params = parse_assignments([*args.param, *args.assignments])
    with following(args, settings, starting=args.workflow) as orch:
        run_id = orch.start_run(args.workflow, params, started_by=settings.user)
        return finish(orch, run_id, args, settings.user)


def cmd_decide(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with following(args, settings) as orch:
        found = interaction(orch.engine, args.interaction)
        if found is None:
            raise Stop(f"no interaction {args.interaction!r}; `opsloop pending` lists open ones")
        answer = prompts.parse_answer(found, args.answer)
        orch.watch_run(found.run_id)
        view = orch.decide(found.id, settings.user, answer, args.comment)
        if view.status == "pending" and not args.json:
            print(f"recorded; {view.step_id} still needs more approvals")
        return finish(orch, found.run_id, args, settings.user)


def cmd_cancel(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with following(args, settings) as orch:
        run = orch.cancel(args.run, settings.user)
        if args.json:
            print_json(console.run_json(run, []))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with following(args, settings) as orch:
        orch.watch_run(args.run)
        orch.retry(args.run, args.step, settings.user)
        return finish(orch, args.run, args, settings.user)


def cmd_rerun(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    with following(args, settings) as orch:
        run_id = orch.rerun(args.run, settings.user)
        return finish(orch, run_id, args, settings.user)


def cmd_resume(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    engine = open_engine(settings)
    unfinished = unfinished_runs(engine)
    with following(args, settings, recover=True) as orch:
        stuck = dict(filter(None, (_stuck(orch, run_id) for run_id in unfinished)))
        results = [orch.wait(run_id, FOREVER) for run_id in unfinished if run_id not in stuck]
    if args.json:
        print_json(
            [{"run_id": r.id, "status": r.status} for r in results]
            + [{"run_id": i, "status": "stuck", "error": e} for i, e in stuck.items()]
        )
    elif not results and not stuck:
        print("no unfinished runs")
    elif results:
        print(console.format_table(["run", "workflow", "status"],
                                   [[r.id, r.workflow, r.status] for r in results]))  # fmt: skip
    for error in stuck.values():
        print(f"opsloop: {error}", file=sys.stderr)
    return EXIT_USAGE if stuck else EXIT_OK


def _stuck(orch: Orchestrator, run_id: str) -> tuple[str, str] | None:
    """A run no process can advance (its workflow is gone; waiting for it would never end):
    its id and what to do about it. None for any other run."""
    run = orch.view(run_id)
    try:
        orch.workflow_of(run)
    except OrchestratorError as exc:
        return run_id, cannot_continue(run_id, run.workflow, exc)
    return None
