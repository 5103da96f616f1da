"""Build the orchestrator a front end talks to, from `Settings`: construct, then start.

Building and starting are separate steps, as with Bolt's `App`: the caller first
builds every collaborator (database, front end, directory), passes them all to
the orchestrator's constructor, and starts it last (`started`), so nothing the
orchestrator reports while it starts (recovery questions) can go unheard.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.settings import Settings, SettingsError
from orchestrator.access import parse_admins
from orchestrator.clock import Clock, SpeedClock, SystemClock
from orchestrator.errors import DefinitionError
from orchestrator.protocol import Directory, FrontEnd, StaticDirectory
from orchestrator.rate_limit import RateLimit
from orchestrator.secrets import Scrubber, secret_values
from orchestrator.step_limits import StepLimits
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.loader import load_valid_workflows, load_workflows
from storage.engine import create_engine
from storage.schema import check_schema, current_revision, setup
from storage.statistics import keep_statistics

if TYPE_CHECKING:  # imported where one is built: `opsloop audit` needs only clock_of
    from orchestrator.engine import Orchestrator

log = logging.getLogger(__name__)


def workflows(settings: Settings) -> dict[str, Workflow]:
    """Every workflow in the workflows directory; any invalid file stops everything."""
    directory = settings.check_workflows_dir()
    try:
        return load_workflows(directory)
    except DefinitionError as err:
        raise DefinitionError(
            err.path, err.line, err.message,
            f"{err.hint + '; ' if err.hint else ''}`opsloop validate` lists every problem",
        ) from None  # fmt: skip


def workflows_for_runs(settings: Settings, starting: str | None = None) -> dict[str, Workflow]:
    """The valid workflows, for commands on runs under way: each run follows its own
    stored version, so a colleague's broken edit must not stop a cancel mid-incident.
    Only `starting` (a workflow about to be started) is refused if its file is broken."""
    directory = settings.check_workflows_dir()
    found, broken = load_valid_workflows(directory)
    if starting is not None and (starting in broken or (starting not in found and broken)):
        err = broken.get(starting) or next(iter(broken.values()))
        raise DefinitionError(err.path, err.line, err.message,
                              f"{err.hint + '; ' if err.hint else ''}`opsloop validate` lists "
                              "every problem")  # fmt: skip
    for err in broken.values():
        log.warning("skipped an invalid workflow file (runs under way are not affected): %s", err)
    return found


@contextmanager
def database(settings: Settings, *, migrate: bool = False) -> Iterator[Engine]:
    """The configured database; disposed on exit. Only `serve` passes `migrate` (it
    upgrades the schema); the CLI creates the schema of a new database but never upgrades
    one in use (a write lock on production): it refuses, saying to run `db upgrade`."""
    engine = create_engine(settings.database_url)
    try:
        if migrate or current_revision(engine) is None:
            setup(engine)
            if migrate:  # `serve`: the planner's statistics, before the first query needs them
                keep_statistics(engine)
        else:
            check_schema(engine)
        yield engine
    finally:
        engine.dispose()


def static_directory(settings: Settings) -> StaticDirectory:
    """The groups named in OPSLOOP_GROUPS."""
    try:
        return StaticDirectory.parse(settings.groups)
    except ValueError as exc:
        raise SettingsError(f"OPSLOOP_GROUPS: {exc}") from None


def build_orchestrator(
    settings: Settings,
    engine: Engine,
    known: Mapping[str, Workflow],
    *,
    front_end: FrontEnd | None = None,
    directory: Directory | None = None,
    clock: Clock | None = None,
    secrets: Iterable[str | None] = (),
) -> Orchestrator:
    """An orchestrator with every collaborator given, not started yet.

    `secrets` (the Slack credentials `serve` was given) join the bot's own secrets found
    in its environment: none of them is stored or posted from a step's report."""
    from orchestrator.engine import Orchestrator

    scrubber = Scrubber([*secret_values(os.environ, settings.database_url), *secrets])
    return Orchestrator(
        engine, known, front_end=front_end, max_workers=settings.max_workers,
        directory=static_directory(settings) if directory is None else directory,
        clock=clock or clock_of(settings), scrubber=scrubber, admins=parse_admins(settings.admins),
        rate_limit=rate_limit(settings),
        limits=StepLimits(settings.step_timeout, settings.workflow_workers),
    )  # fmt: skip


def clock_of(settings: Settings) -> Clock:
    """The wall clock, or one that runs OPSLOOP_CLOCK_SPEED times as fast (tests, demos)."""
    return SystemClock() if settings.clock_speed == 1 else SpeedClock(settings.clock_speed)


def rate_limit(settings: Settings) -> RateLimit | None:
    """OPSLOOP_RATE_LIMIT, checked."""
    try:
        return RateLimit.parse(settings.rate_limit)
    except ValueError as exc:
        raise SettingsError(f"OPSLOOP_RATE_LIMIT: {exc}") from None


@contextmanager
def started(
    orch: Orchestrator, *, recover: bool = False, serving: bool = False
) -> Iterator[Orchestrator]:
    """`orch` started; closed on exit.

    `recover=True` takes over every unfinished run: only for processes that own
    the database (`opsloop resume`, `opsloop serve`). `serving`: a `serve` process
    (Orchestrator.start).
    """
    orch.start(recover=recover, serving=serving)
    try:
        yield orch
    finally:
        orch.close()


def drain_then_close(orch: Orchestrator, grace: float) -> None:
    """A graceful stop (SIGTERM), the same for `serve` and `serve --no-slack`: start nothing
    new, give running steps `grace` s, kill the shell steps left, release leases, close."""
    log.info("stopping: no new commands; running steps get up to %g s", grace)
    orch.drain(grace)
    orch.close()


def exit_if_steps_left(orch: Orchestrator) -> None:
    """Python steps still running after a drain cannot be killed, and the interpreter
    would wait for them at exit with no heartbeat for their leases: exit now instead, as
    a crash would; the next start (or another replica) recovers them (docs/operations.md)."""
    left = orch.running_steps()
    if not left:
        return
    log.warning("exiting with %d python step(s) still running: %s; the next start recovers "
                "them", len(left), ", ".join("/".join(key) for key in sorted(left)))  # fmt: skip
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
