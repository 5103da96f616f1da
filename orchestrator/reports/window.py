"""The window a report covers, and the filters every query of it shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.reports.audience import Audience
from orchestrator.runs import RUNS

DEFAULT_SINCE = timedelta(days=7)
MAX_SINCE = timedelta(days=3660)


@dataclass(frozen=True)
class Window:
    """[since, until), and, if given, the workflows a report is limited to and the
    audience it is for (None: every run)."""

    since: datetime
    until: datetime
    workflows: tuple[str, ...] = ()
    audience: Audience | None = None

    @classmethod
    def ending(
        cls, until: datetime, span: timedelta = DEFAULT_SINCE, workflows: tuple[str, ...] = (),
        audience: Audience | None = None,
    ) -> Window:  # fmt: skip
        if span <= timedelta(0) or span > MAX_SINCE:
            raise ValueError(f"a report covers 1 s to {MAX_SINCE.days} days, not {span}")
        return cls(until - span, until, tuple(dict.fromkeys(workflows)), audience)

    def during(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """`column` falls in the window."""
        return sa.and_(column >= self.since, column < self.until)

    def of_workflows(self) -> sa.ColumnElement[bool]:
        """The run is of one of the workflows asked for (all when none were), and the
        audience may see it."""
        named = RUNS.c.workflow.in_(self.workflows) if self.workflows else sa.true()
        return named if self.audience is None else sa.and_(named, self.audience.clause())

    def runs(self) -> sa.ColumnElement[bool]:
        """Runs created in the window, of the workflows asked for."""
        return sa.and_(self.during(RUNS.c.created_at), self.of_workflows())
