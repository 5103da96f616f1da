"""An orchestrator for a test: built on workflow texts, started, closed on exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from orchestrator.engine import Orchestrator
from orchestrator.protocol import Directory
from orchestrator.workflow.loader import parse_workflow


@contextmanager
def running(
    engine: sa.Engine,
    *texts: str,
    directory: Directory | None = None,
    recover: bool = False,
    max_workers: int = 8,
) -> Iterator[Orchestrator]:
    """`recover=True` starts it as `serve` does: it takes over unfinished runs."""
    workflows = {w.name: w for w in map(parse_workflow, texts)}
    orch = Orchestrator(engine, workflows, directory=directory, max_workers=max_workers)
    orch.start(recover=recover)
    try:
        yield orch
    finally:
        orch.close()
