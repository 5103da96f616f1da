"""The `opsloop` commands that read or check without running anything: runs, pending,
show, validate, plan, and the schema's `db upgrade` / `db status`."""

from __future__ import annotations

import argparse
import sys

from bot import console
from bot.cli_io import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    open_reader,
    print_json,
    settings_of,
)
from bot.settings import SettingsError
from orchestrator.errors import OrchestratorError, UnknownWorkflow
from orchestrator.run_list import recent_runs
from storage.engine import create_engine
from storage.schema import current_revision, head_revision, known_revisions, setup
from storage.statistics import keep_statistics


def cmd_runs(args: argparse.Namespace) -> int:
    engine = open_reader(settings_of(args))
    summaries = recent_runs(engine, args.limit)
    if args.json:
        print_json([console.summary_json(s) for s in summaries])
    else:
        print(console.format_runs(summaries))
    return EXIT_OK


def cmd_pending(args: argparse.Namespace) -> int:
    from orchestrator.queries import open_interactions, run_view

    engine = open_reader(settings_of(args))
    if args.run is not None:
        run_view(engine, args.run)  # NotFound, saying where to look, for an unknown run
    pending = open_interactions(engine, args.run)
    if args.json:
        print_json([console.interaction_json(i) for i in pending])
    elif not pending:
        print("nothing is waiting for a person")
    else:
        print("\n".join(f"run {i.run_id}  {console.format_interaction(i)}" for i in pending))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from bot.audit_text import audit_json, format_audit
    from orchestrator.audit import audit_entries
    from orchestrator.queries import open_interactions, run_view

    settings = settings_of(args)
    engine = open_reader(settings)
    run = run_view(engine, args.run)
    pending = open_interactions(engine, run.id)
    trail = audit_entries(engine, run_id=run.id)
    if args.json:
        print_json({**console.run_json(run, pending), "audit": [audit_json(r) for r in trail]})
        return EXIT_OK
    from bot.runtime import workflows  # the workflow language: only for the table
    from orchestrator.versions import WorkflowVersions

    try:  # the run's own version, for step kinds
        workflow = WorkflowVersions(engine, workflows(settings)).of(run.workflow, run.digest)
    except (OrchestratorError, SettingsError):
        workflow = None  # `show` still works when the workflow files moved or broke
    print(console.format_run(run, workflow, pending))
    print(f"\naudit trail:\n{format_audit(trail)}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from bot.task_check import task_problems
    from orchestrator.workflow.loader import validate_paths

    paths = args.paths or [str(settings_of(args).check_workflows_dir())]
    problems = validate_paths(paths)
    problems += task_problems(paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s); nothing invalid can be run", file=sys.stderr)
        return EXIT_USAGE
    print(f"ok: {', '.join(paths)}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from bot.plan import plan_text
    from bot.runtime import clock_of, workflows
    from orchestrator.workflow.params import parse_assignments

    settings = settings_of(args)
    known = workflows(settings)
    if args.workflow not in known:
        raise UnknownWorkflow(args.workflow, known)
    raw = parse_assignments([*args.param, *args.assignments])
    print(plan_text(known[args.workflow], raw, clock_of(settings).now()))
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    engine = create_engine(settings_of(args).database_url)
    setup(engine)
    keep_statistics(engine)
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
