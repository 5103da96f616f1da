"""A pass's step changes and its version bump in one round trip on PostgreSQL.

A chain step's pass records the step that ended, claims the next one and raises the
run's version: three UPDATEs, each a round trip to the server before the COMMIT (which
must wait for the disk: the claim is durable before the step runs). On PostgreSQL the
pass holds those step changes back and sends them with the version bump as one
statement, data-modifying CTEs (`WITH u0 AS (UPDATE step_run ...), ..., bump AS (UPDATE
workflow_run ...) SELECT counts, version`): the same rows, conditions and guarantees,
two round trips fewer per chain step.

The pass applies the held changes to its state as if they had won. If one did not (a
cancel or another replica got there first), the pass raises StaleRun: the transaction
rolls back and the pass is made again from a fresh read, without holding anything back,
so the usual path sorts out who won. Any other write of the pass (a skip, the run's
status) first sends what is held, so every pass still changes step rows before the run
row, the order every writer follows (no deadlock between them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.runs import RUNS, STEPS
from storage import prepared

# Step changes sent in one statement; a larger pass sends them as usual (an executemany
# per set of columns, then the version bump). A statement of many CTEs is planned anew
# each time its shape changes: a 16-step pass's 28 CTEs took 4.4 ms, the usual way
# 3.2 ms (bench/engine.py's 2,000-step fan-out, docs/benchmarks.md session 10). A chain
# step's pass (two changes) stays one round trip.
MAX_FUSED = 4


class StaleRun(Exception):
    """Something else changed the run since the pass's state was read (or a held change
    did not win): roll back and pass again from a fresh read."""


class HeldWrites:
    """Step changes a pass holds back, to send with its version bump (PostgreSQL only)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        # (expected status, owner fence or None, {step id: values}) in the order made
        self._groups: list[tuple[str, str | None, dict[str, Mapping[str, Any]]]] = []

    def __bool__(self) -> bool:
        return any(changes for _, _, changes in self._groups)

    def add(
        self, changes: Mapping[str, Mapping[str, Any]], *, expect: str, owner: str | None = None
    ) -> None:
        """Hold `runs.set_steps(conn, run_id, changes, expect=..., owner=...)`."""
        if changes:
            self._groups.append((str(expect), owner, dict(changes)))

    def flush(self, conn: Connection) -> None:
        """Send what is held now, as the usual statements; StaleRun if one lost."""
        groups, self._groups = self._groups, []
        for expect, owner, changes in groups:
            won = runs.set_steps(conn, self.run_id, changes, expect=expect, owner=owner)
            if won != len(changes):
                raise StaleRun(self.run_id)

    def bump(self, conn: Connection) -> int | None:
        """Send what is held and raise the run's version; the new version (None: no run).
        StaleRun if a held change lost."""
        held = sum(len(changes) for _, _, changes in self._groups)
        if not held or held > MAX_FUSED:  # counted first: most large passes go this way
            self.flush(conn)
            return runs.bump_run(conn, self.run_id)
        rows = [(expect, owner, step_id, values) for expect, owner, changes in self._groups
                for step_id, values in changes.items()]  # fmt: skip
        self._groups = []
        shape = tuple((tuple(values), owner is not None) for _, owner, _, values in rows)
        params: dict[str, Any] = {"the_run": self.run_id}
        for i, (expect, owner, step_id, values) in enumerate(rows):
            params.update({f"s{i}": step_id, f"e{i}": expect, f"o{i}": owner})
            params.update((f"v{i}_{k}", v) for k, v in values.items())
        *counts, version = prepared.execute(conn, _fused(shape), params).one()
        if any(n != 1 for n in counts):
            raise StaleRun(self.run_id)
        return version


_STATEMENTS: dict[tuple[tuple[tuple[str, ...], bool], ...], sa.Select] = {}


def _fused(shape: tuple[tuple[tuple[str, ...], bool], ...]) -> sa.Select:
    """WITH u<i> AS (UPDATE step_run ... RETURNING), bump AS (UPDATE workflow_run ...)
    SELECT the count of each u<i>, the new version. Built once per shape (as
    runs._conditional_update is: building a statement costs more than running it)."""
    statement = _STATEMENTS.get(shape)
    if statement is not None:
        return statement
    counts = []
    for i, (columns, fenced) in enumerate(shape):
        where = [STEPS.c.run_id == sa.bindparam("the_run"),
                 STEPS.c.step_id == sa.bindparam(f"s{i}"),
                 STEPS.c.status == sa.bindparam(f"e{i}")]  # fmt: skip
        if fenced:
            where.append(STEPS.c.owner == sa.bindparam(f"o{i}"))
        values = {c: sa.bindparam(f"v{i}_{c}", type_=STEPS.c[c].type) for c in columns}
        changed = (
            sa.update(STEPS).where(*where).values({**values, "version": STEPS.c.version + 1})
            .returning(STEPS.c.step_id).cte(f"u{i}")
        )  # fmt: skip
        counts.append(sa.select(sa.func.count()).select_from(changed).scalar_subquery())
    # The run row last: its UPDATE waits on the step changes' counts (a one-time filter
    # PostgreSQL evaluates before it scans, and so locks, the run row).
    bump = (
        sa.update(RUNS)
        .where(RUNS.c.id == sa.bindparam("the_run"), *(n >= 0 for n in counts))
        .values(version=RUNS.c.version + 1)
        .returning(RUNS.c.version)
        .cte("bump")
    )
    statement = sa.select(*counts, sa.select(bump.c.version).scalar_subquery())
    _STATEMENTS[shape] = statement
    return statement
