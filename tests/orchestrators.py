"""An orchestrator for a test: built on workflow texts, started, closed on exit; and a
front end that keeps the reminders and escalations it is told."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from orchestrator.clock import Clock
from orchestrator.engine import Orchestrator
from orchestrator.protocol import Directory, FrontEnd, InteractionView, RunView, SilentFrontEnd
from orchestrator.workflow.loader import parse_workflow


@contextmanager
def running(
    engine: sa.Engine,
    *texts: str,
    directory: Directory | None = None,
    recover: bool = False,
    max_workers: int = 8,
    clock: Clock | None = None,
    front_end: FrontEnd | None = None,
    **more: Any,
) -> Iterator[Orchestrator]:
    """`recover=True` starts it as `serve` does: it takes over unfinished runs."""
    workflows = {w.name: w for w in map(parse_workflow, texts)}
    orch = Orchestrator(
        engine,
        workflows,
        directory=directory,
        max_workers=max_workers,
        clock=clock,
        front_end=front_end,
        **more,
    )
    orch.start(recover=recover)
    try:
        yield orch
    finally:
        orch.close()


class Nudges(SilentFrontEnd):
    """The ids of the interactions it was told to remind about and to escalate."""

    def __init__(self) -> None:
        self.reminders: list[str] = []
        self.escalations: list[str] = []

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        self.reminders.append(interaction.id)

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        self.escalations.append(interaction.id)
