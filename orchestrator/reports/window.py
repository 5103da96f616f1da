"""The window a report covers, and the filters every query of it shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.runs import RUNS

DEFAULT_SINCE = timedelta(days=7)
MAX_SINCE = timedelta(days=3660)


@dataclass(frozen=True)
class Window:
    """[since, until) and, if given, the workflows a report is limited to."""

    since: datetime
    until: datetime
    workflows: tuple[str, ...] = ()

    @classmethod
    def ending(
        cls, until: datetime, span: timedelta = DEFAULT_SINCE, workflows: tuple[str, ...] = ()
    ) -> Window:
        if span <= timedelta(0) or span > MAX_SINCE:
            raise ValueError(f"a report covers 1 s to {MAX_SINCE.days} days, not {span}")
        return cls(until - span, until, tuple(dict.fromkeys(workflows)))

    def during(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """`column` falls in the window."""
        return sa.and_(column >= self.since, column < self.until)

    def of_workflows(self) -> sa.ColumnElement[bool]:
        """The run is of one of the workflows asked for (all when none were)."""
        return RUNS.c.workflow.in_(self.workflows) if self.workflows else sa.true()

    def runs(self) -> sa.ColumnElement[bool]:
        """Runs created in the window, of the workflows asked for."""
        return sa.and_(self.during(RUNS.c.created_at), self.of_workflows())
