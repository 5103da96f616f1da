"""Runs, steps and audit entries as the orchestrator reads and changes them.

Each function takes an open connection, so callers group changes into one
transaction. Status changes go through conditional UPDATEs: a function that
returns False lost a race and must not act.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import step_rows
from orchestrator.interactions import INTERACTIONS, pending_interactions
from orchestrator.protocol import RunView, StepView
from orchestrator.workflow.definitions import Workflow
from storage import prepared
from storage.engine import dialect_insert
from storage.models import AuditEntry, StepRun, WorkflowDefinition, WorkflowRun
from storage.statuses import FINISHED_RUN, InteractionStatus, RunStatus, StepStatus
from storage.statuses import SYSTEM as SYSTEM  # the actor in the audit log for opsloop itself

RUNS: sa.Table = WorkflowRun.__table__  # type: ignore[attr-defined]
STEPS: sa.Table = StepRun.__table__  # type: ignore[attr-defined]
AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
DEFINITIONS: sa.Table = WorkflowDefinition.__table__  # type: ignore[attr-defined]


def new_run_id() -> str:
    return "r-" + uuid.uuid4().hex[:10]


def insert_run(
    conn: Connection,
    *,
    run_id: str,
    workflow: str,
    digest: str,
    params: Mapping[str, Any],
    step_ids: Iterable[str],
    started_by: str,
    front_end: str,
    channel: str | None,
    rerun_of: str | None,
    now: datetime,
) -> None:
    conn.execute(
        sa.insert(RUNS).values(
            id=run_id, workflow=workflow, definition_hash=digest, params=dict(params),
            started_by=started_by, front_end=front_end, channel=channel,
            status=RunStatus.RUNNING, rerun_of=rerun_of, version=0,
            created_at=now, started_at=now, updated_at=now,
        )
    )  # fmt: skip
    step_rows.insert(conn, run_id, workflow, step_ids, now)


def insert_started(
    conn: Connection, wf: Workflow, run_id: str, values: Mapping[str, Any], started_by: str,
    front_end: str, channel: str | None, rerun_of: str | None, now: datetime,
) -> None:  # fmt: skip
    """A new run of `wf`: its definition kept, its rows inserted, its start audited."""
    if wf.text:  # a workflow built in code has no text to keep
        save_definition(conn, wf.name, wf.digest, wf.text, now)
    insert_run(
        conn, run_id=run_id, workflow=wf.name, digest=wf.digest, params=values,
        step_ids=[s.id for s in wf.steps], started_by=started_by,
        front_end=front_end, channel=channel, rerun_of=rerun_of, now=now,
    )  # fmt: skip
    audit(
        conn,
        started_by,
        "run.started",
        now=now,
        run_id=run_id,
        params=values,
        front_end=front_end,
        channel=channel,
        **({"rerun_of": rerun_of} if rerun_of else {}),
    )


def save_definition(conn: Connection, workflow: str, digest: str, text: str, now: datetime) -> None:
    """Keep a workflow version's text (once per digest), for the runs that start with it."""
    conn.execute(
        dialect_insert(conn)(DEFINITIONS)
        .values(digest=digest, workflow=workflow, text=text, created_at=now)
        .on_conflict_do_nothing()
    )


def definition_text(conn: Connection, digest: str) -> str | None:
    """The text of the workflow version with this digest, if a run started with it."""
    return conn.execute(
        sa.select(DEFINITIONS.c.text).where(DEFINITIONS.c.digest == digest)
    ).scalar()


def set_step(
    conn: Connection, run_id: str, step_id: str, *, expect: Iterable[str], signal: bool = True,
    **values: Any,
) -> bool:  # fmt: skip
    """Change a step only if its status is one of `expect`; True if this call did it.

    The run's `version` goes up with it, which tells the passes of every process that
    their view of the run is stale (orchestrator/runstate.py); `signal=False` only for
    the changes a pass makes or hears of itself (its own claims and outcomes)."""
    expected = [str(s) for s in expect]
    single = len(expected) == 1  # an IN list is expanded at each execution: ~25 us more
    stmt = _conditional_update(STEPS.name, ("run_id", "step_id"), tuple(values), single)
    params = {"k0": run_id, "k1": step_id, "expect": expected[0] if single else expected}
    params.update((f"v_{k}", v) for k, v in values.items())
    changed = prepared.execute(conn, stmt, params).rowcount == 1
    if changed and signal:
        bump_run(conn, run_id)
    return changed


def bump_run(conn: Connection, run_id: str) -> int | None:
    """Raise the run's version (its steps changed); the new version."""
    return prepared.execute(conn, _BUMP, {"run_id": run_id}).scalar()


def run_version(conn: Connection, run_id: str) -> int | None:
    return prepared.execute(conn, _VERSION, {"run_id": run_id}).scalar()


_BUMP = (
    sa.update(RUNS)
    .where(RUNS.c.id == sa.bindparam("run_id"))
    .values(version=RUNS.c.version + 1)
    .returning(RUNS.c.version)
)
_VERSION = sa.select(RUNS.c.version).where(RUNS.c.id == sa.bindparam("run_id"))


def set_steps(
    conn: Connection,
    run_id: str,
    changes: Mapping[str, Mapping[str, Any]],
    *,
    expect: str,
    owner: str | None = None,
) -> int:
    """`set_step` for several steps of a run in one round trip; how many changed.

    Every change must set the same columns. With `owner`, only rows that process still
    owns change: a replica whose step was taken over cannot record its result. Which
    steps changed is for the caller to read back when the count is short (another
    replica or a cancel got there first).
    """
    if not changes:
        return 0
    columns = tuple(next(iter(changes.values())))
    keys = ("run_id", "step_id") if owner is None else ("run_id", "step_id", "owner")
    # One expected status: an IN list cannot be expanded in an executemany.
    stmt = _conditional_update(STEPS.name, keys, columns, single=True)
    fence = {} if owner is None else {"k2": owner}
    params = [
        {"k0": run_id, "k1": step_id, **fence, "expect": str(expect),
         **{f"v_{k}": v[k] for k in columns}}
        for step_id, v in changes.items()
    ]  # fmt: skip
    return prepared.execute(conn, stmt, params).rowcount


def cancelled_steps(conn: Connection, run_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(run id, step id) of the cancelled steps of these runs."""
    rows = conn.execute(
        sa.select(STEPS.c.run_id, STEPS.c.step_id).where(
            STEPS.c.run_id.in_(list(run_ids)), STEPS.c.status == StepStatus.CANCELLED
        )
    )
    return {(r[0], r[1]) for r in rows}


def steps_with_threads(conn: Connection, run_id: str, thread_ids: Iterable[str]) -> set[str]:
    """Which steps of a run now run on one of `thread_ids`."""
    rows = conn.execute(
        sa.select(STEPS.c.step_id).where(
            STEPS.c.run_id == run_id, STEPS.c.thread_id.in_(list(thread_ids))
        )
    )
    return {r[0] for r in rows}


def set_run(conn: Connection, run_id: str, *, expect: Iterable[str], **values: Any) -> bool:
    stmt = _conditional_update(RUNS.name, ("id",), tuple(values))
    params = {"k0": run_id, "expect": [str(s) for s in expect]}
    params.update((f"v_{k}", v) for k, v in values.items())
    return prepared.execute(conn, stmt, params).rowcount == 1


@functools.cache
def _conditional_update(
    table_name: str, keys: tuple[str, ...], columns: tuple[str, ...], single: bool = False
) -> sa.Update:
    """UPDATE table SET columns..., version = version + 1 WHERE keys AND status IN expect.

    Built once per shape: building and keying a statement costs more than running it
    (the scheduler makes several of these per step)."""
    table = {RUNS.name: RUNS, STEPS.name: STEPS}[table_name]
    return (
        sa.update(table)
        .where(
            *(table.c[key] == sa.bindparam(f"k{i}") for i, key in enumerate(keys)),
            table.c.status == sa.bindparam("expect")
            if single
            else table.c.status.in_(sa.bindparam("expect", expanding=True)),
        )
        .values(
            {
                **{name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in columns},
                "version": table.c.version + 1,
            }
        )
    )


def cancel_run(conn: Connection, run_id: str, by: str, now: datetime) -> list[str] | None:
    """Cancel a run with its unfinished steps and open interactions; the interactions'
    ids, or None if the run was not running."""
    if not set_run(
        conn, run_id, expect=[RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PENDING],
        status=RunStatus.CANCELLED, finished_at=now, updated_at=now, error=f"cancelled by {by}",
    ):  # fmt: skip
        return None
    unfinished = [StepStatus.PENDING, StepStatus.WAITING, StepStatus.RUNNING]
    conn.execute(
        sa.update(STEPS)
        .where(STEPS.c.run_id == run_id, STEPS.c.status.in_(unfinished))
        .values(
            status=StepStatus.CANCELLED,
            finished_at=now,
            updated_at=now,
            version=STEPS.c.version + 1,
        )
    )
    open_ids = [r["id"] for r in pending_interactions(conn, run_id)]
    conn.execute(
        sa.update(INTERACTIONS)
        .where(INTERACTIONS.c.id.in_(open_ids))
        .values(status=InteractionStatus.CANCELLED, answered_by=by, answered_at=now)
    )
    audit(conn, by, "run.cancelled", now=now, run_id=run_id)
    return open_ids


def audit(
    conn: Connection,
    actor: str,
    action: str,
    *,
    now: datetime,
    run_id: str | None = None,
    interaction_id: str | None = None,
    **detail: Any,
) -> None:
    conn.execute(
        sa.insert(AUDIT).values(
            at=now, actor=actor, action=action, run_id=run_id,
            interaction_id=interaction_id, detail=detail,
        )
    )  # fmt: skip


# The scheduler loads a run several times per step: these are built once and read only
# the columns a view shows (each extra datetime column is parsed per row on SQLite), and
# rows are unpacked as tuples: about 40% less time per load on a 64-step run.
_RUN_VIEW_COLUMNS = ("id", "workflow", "status", "params", "started_by", "channel", "thread_ts",
                     "error", "definition_hash", "created_at")  # fmt: skip
_RUN_VIEW = sa.select(*(RUNS.c[name] for name in _RUN_VIEW_COLUMNS)).where(
    RUNS.c.id == sa.bindparam("run_id")
)
# Outputs come as text, parsed only for rows a cache does not already hold.
_STEP_VIEW_COLUMNS = ("step_id", "version", "status", "attempts", "started_at", "finished_at",
                      "error")  # fmt: skip
_STEP_VIEWS = (
    sa.select(*(STEPS.c[name] for name in _STEP_VIEW_COLUMNS), sa.cast(STEPS.c.outputs, sa.Text))
    .where(STEPS.c.run_id == sa.bindparam("run_id"))
    .order_by(STEPS.c.id)
)

_RUN_VIEW_LOCKED = _RUN_VIEW.with_for_update()  # nothing on SQLite: its writers queue anyway

# A run's step views by step id, each with the row version it was built from.
ViewCache = dict[str, tuple[int, StepView]]


def load_run(
    conn: Connection, run_id: str, cache: ViewCache | None = None, *, lock: bool = False
) -> RunView | None:
    """The run as committed. With `cache` (kept by the caller across loads of this run),
    a step row whose version is unchanged reuses its view: every change to a step row
    bumps its version, so a wide run's load parses only the rows that changed. `lock`:
    the run's row is locked until the transaction ends (orchestrator/resuming.py)."""
    row = conn.execute(_RUN_VIEW_LOCKED if lock else _RUN_VIEW, {"run_id": run_id}).first()
    if row is None:
        return None
    run_id, workflow, status, params, started_by, channel, thread_ts, error, digest, created = row
    cache = {} if cache is None else cache
    steps = []
    for step_id, version, *values in conn.execute(_STEP_VIEWS, {"run_id": run_id}):
        hit = cache.get(step_id)
        if hit is None or hit[0] != version:
            hit = cache[step_id] = (version, step_view(step_id, *values))
        steps.append(hit[1])
    return RunView(
        id=run_id, workflow=workflow, status=status, params=params, started_by=started_by,
        channel=channel, thread_ts=thread_ts, error=error, steps=tuple(steps), digest=digest,
        created_at=created,
    )  # fmt: skip


def step_view(
    step_id: str, status: str, attempts: int, started_at: datetime | None,
    finished_at: datetime | None, error: str | None, outputs: str | None,
) -> StepView:  # fmt: skip
    """A step's view from its columns (then its outputs as JSON text)."""
    return StepView(
        step_id=step_id, kind="", status=status, attempts=attempts, started_at=started_at,
        finished_at=finished_at, error=error,
        outputs=None if outputs is None else json.loads(outputs),
    )  # fmt: skip


def list_runs(conn: Connection, limit: int = 20) -> list[Mapping[str, Any]]:
    return list(
        conn.execute(sa.select(RUNS).order_by(RUNS.c.created_at.desc()).limit(limit)).mappings()
    )


def unfinished_run_ids(conn: Connection) -> list[str]:
    rows = conn.execute(
        sa.select(RUNS.c.id).where(RUNS.c.status.not_in([str(s) for s in FINISHED_RUN]))
    )
    return [r[0] for r in rows]
