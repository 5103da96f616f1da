"""Build the orchestrator a front end talks to, from `Settings`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from bot.settings import Settings, SettingsError
from orchestrator.engine import Orchestrator
from orchestrator.errors import DefinitionError
from orchestrator.protocol import FrontEnd, StaticDirectory
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.loader import load_workflows
from storage.engine import create_engine
from storage.schema import setup


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


@contextmanager
def orchestrator(
    settings: Settings,
    front_end: FrontEnd | None = None,
    *,
    recover: bool = False,
    known: Mapping[str, Workflow] | None = None,
) -> Iterator[Orchestrator]:
    """An upgraded database and a started orchestrator; closed on exit.

    `recover=True` takes over every unfinished run: only for processes that own
    the database (`opsloop resume`, `opsloop serve`). `known`: the workflows, when
    the caller has loaded them already.
    """
    known = workflows(settings) if known is None else known
    engine = create_engine(settings.database_url)
    try:
        setup(engine)
        orch = Orchestrator(
            engine, known, front_end=front_end, max_workers=settings.max_workers,
            directory=_directory(settings.groups),
        )  # fmt: skip
        orch.start(recover=recover)
        try:
            yield orch
        finally:
            orch.close()
    finally:
        engine.dispose()


def _directory(groups: str) -> StaticDirectory:
    try:
        return StaticDirectory.parse(groups)
    except ValueError as exc:
        raise SettingsError(f"OPSLOOP_GROUPS: {exc}") from None
