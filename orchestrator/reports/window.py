"""The window a report covers, and the filters every query of it shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from orchestrator.reports.tables import INTERACTIONS, RUNS, STEPS

if TYPE_CHECKING:  # the audience (access rules, open questions) only when a report has one
    from orchestrator.reports.audience import Audience

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

    def steps(self, seek: bool = True) -> sa.ColumnElement[bool]:
        """Steps of the runs `runs()` holds, by the run columns copied onto each step (no
        join, so indexes on step_run serve it); the audience still asks the runs. With
        `seek=False` no index seeks on the window (see `unsought`; sql.SORTED)."""
        created = STEPS.c.run_created_at
        held = [self.during(created if seek else unsought(created))]
        if self.workflows:
            held.append(STEPS.c.workflow.in_(self.workflows))
        if self.audience is not None:
            held.append(STEPS.c.run_id.in_(sa.select(RUNS.c.id).where(self.runs())))
        return sa.and_(*held)

    def gates(self, seek: bool = True) -> sa.ColumnElement[bool]:
        """Gates asked in the window, by the run's workflow copied onto each gate; the
        audience asks the runs (created whenever: a gate outlives its run's window)."""
        created = INTERACTIONS.c.created_at
        held = [self.during(created if seek else unsought(created)),
                INTERACTIONS.c.purpose == "gate"]  # fmt: skip
        if self.workflows:
            held.append(INTERACTIONS.c.workflow.in_(self.workflows))
        if self.audience is not None:
            seen = sa.select(RUNS.c.id).where(self.audience.clause())
            held.append(INTERACTIONS.c.run_id.in_(seen))
        return sa.and_(*held)

    def runs(self, seek: bool = True) -> sa.ColumnElement[bool]:
        """Runs created in the window, of the workflows asked for."""
        created = RUNS.c.created_at if seek else unsought(RUNS.c.created_at)
        return sa.and_(self.during(created), self.of_workflows())


def unsought(column: sa.ColumnElement) -> sa.ColumnElement:
    """`column`, written so no index seeks on it: a percentile walks an index ordered by
    the value instead, and filters the window from the index entries as it goes."""
    return sa.func.coalesce(column, column, type_=column.type)
