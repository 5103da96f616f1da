"""Claiming the step behind a closed question, in the transaction that closed it.

An answer that closed a question used to commit, then read the question three more
times and claim its step in a transaction of its own, and read the run three times
(for the front end, the step's running state and the step itself) before the step's
LangGraph thread resumed: about 50 round trips on PostgreSQL (bench/answer_path.py).
Now the answer's transaction reads the run once and claims the waiting step (waiting ->
running, owned by this process) with one UPDATE that returns its thread, and one that
sets the run running and raises its version; what it read travels on with the step.

The run was read with its row locked, so no change that raises its version committed
since: the view after the claim is the run at the version the claim returns, and the
next pass starts from it (`RunState`, runstate.py) instead of reading the run again.

A gate goes further (`finish_gate`): its answer is its result, so the answer's
transaction records the gate as ended, writes its thread's finished checkpoint, and
makes the run's next pass, which claims the step after the gate: one commit from the
answer to that step's start, where LangGraph's resume of the gate and a pass of its
own took two more commits, three checkpoint reads and two hand-offs between threads.
On PostgreSQL the gate's writes go with the answer's in one statement (gate_writes.py).

Lock order: the run's row first (FOR UPDATE on PostgreSQL: `locked_run.py`, or the
answer's first read, `answer_reads.py`), then the question, then the step, as
`People.park` does; so an answer racing the commit that parks its step, or a cancel,
waits for it instead of deadlocking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import answer_reads, gate_writes, gates, leases, runs
from orchestrator.advancing import Advancer, Settle
from orchestrator.answer_writes import AnswerWrites, ClaimLost
from orchestrator.errors import StepFailed
from orchestrator.live import LiveRuns
from orchestrator.protocol import RunView
from orchestrator.runstate import RunState
from orchestrator.services import Services
from orchestrator.storable import storable
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Step
from storage import prepared
from storage.checkpointer import Head
from storage.engine import single_reads
from storage.statuses import RunStatus, StepStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

# The step whose question was answered, still waiting: claimed to resume, or ended (a gate).
_WAITING_STEP = (
    runs.STEPS.c.run_id == sa.bindparam("b_run"),
    runs.STEPS.c.step_id == sa.bindparam("b_step"),
    runs.STEPS.c.status == StepStatus.WAITING,
)
_CLAIM = (
    sa.update(runs.STEPS)
    .where(*_WAITING_STEP)
    .values(
        status=StepStatus.RUNNING,
        updated_at=sa.bindparam("b_now"),
        owner=sa.bindparam("b_owner"),
        lease_until=sa.bindparam("b_lease"),
        version=runs.STEPS.c.version + 1,
    )
    .returning(runs.STEPS.c.thread_id)
)
_WAITING = runs.RUNS.c.status == RunStatus.WAITING
# The run runs again if it only waited, and its version goes up either way (a step changed).
_WAKE = (
    sa.update(runs.RUNS)
    .where(runs.RUNS.c.id == sa.bindparam("b_run"))
    .values(
        version=runs.RUNS.c.version + 1,
        status=sa.case((_WAITING, RunStatus.RUNNING), else_=runs.RUNS.c.status),
        updated_at=sa.case(
            (_WAITING, sa.bindparam("b_now", type_=runs.RUNS.c.updated_at.type)),
            else_=runs.RUNS.c.updated_at,
        ),
    )
    .returning(runs.RUNS.c.status, runs.RUNS.c.version)
)


_FINISH = (
    sa.update(runs.STEPS)
    .where(*_WAITING_STEP)
    .values(
        status=sa.bindparam("b_status"),
        outputs=sa.bindparam("b_outputs"),
        error=sa.bindparam("b_error"),
        finished_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
        version=runs.STEPS.c.version + 1,
    )
    .returning(runs.STEPS.c.thread_id)
)


@dataclass(frozen=True)
class Resumed:
    """A step claimed to resume: the run as the claim left it, and the step's thread.
    `finished`: the step ended in the claim (a gate: see `finish_gate`), with these
    values; nothing is left to resume."""

    run: RunView
    step_id: str
    thread_id: str
    version: int  # the run's, after the claim: `run` is the run at this version
    finished: dict[str, Any] | None = None


def claim_step(
    conn: Connection, run: RunView, step_id: str, now: datetime, replica: str
) -> Resumed | None:
    """Move `step_id` waiting -> running for this process; None if it was not waiting
    (another caller resumed it, or the commit that parks it has not come yet)."""
    owned = leases.ownership(replica, now)
    claimed = prepared.execute(
        conn,
        _CLAIM,
        {
            "b_run": run.id,
            "b_step": step_id,
            "b_now": now,
            "b_owner": owned["owner"],
            "b_lease": owned["lease_until"],
        },
    ).first()
    if claimed is None:
        return None
    status, version = prepared.execute(conn, _WAKE, {"b_run": run.id, "b_now": now}).one()
    view = replace(run.with_step(step_id, status=StepStatus.RUNNING), status=status)
    return Resumed(view, step_id, claimed[0] or "", version)


def resolution(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a closed question resumes its step with (`interrupt()` returns it). By value:
    one interrupt is pending in the step's thread at a time."""
    return {"status": row["status"], "value": row["answer"], "by": row["answered_by"],
            "responses": row["responses"]}  # fmt: skip


def finish_gate(
    conn: Connection, services: Services, run: RunView, step: Step, row: Mapping[str, Any],
    now: datetime, head: Head | None = None, writes: AnswerWrites | None = None,
) -> Resumed | None:  # fmt: skip
    """Record a waiting gate as ended by its closed question `row`, the way the pass after
    its resume would have, and wake the run; None if it was not waiting.

    A gate's node does nothing after `interrupt()` returns but turn the answer into
    outputs (`gates.step_outputs`), so running it again in LangGraph (three reads, its
    loop on two threads, two writes, then a pass in its own transaction to record it)
    only delayed the next step. Now the answer's transaction records the step and its
    thread's finished checkpoint together (`StepGraph.finish`): a crash leaves both or
    neither. A gate that says no fails, and its thread stays at its interrupt, as
    LangGraph leaves a node that raised. The run is `running` after this commit, so a
    sweep continues it if this process dies before its next pass. `writes`: the answer's
    own, not sent yet: sent here first (on PostgreSQL in one statement with the rest,
    gate_writes.py); ClaimLost, with nothing written, if their claim lost."""
    scrub = services.scrubber
    try:
        outputs: dict[str, Any] | None = gates.step_outputs(step.kind, resolution(row))
        error = None
    except StepFailed as exc:
        outputs, error = None, str(exc)
    status = StepStatus.FAILED if outputs is None else StepStatus.SUCCEEDED
    ended = {"status": status, "outputs": storable(scrub.value(outputs)),
             "error": storable(scrub.text(error) if error else None)}  # fmt: skip
    if writes is not None and conn.dialect.name == "postgresql":
        done = _send_with(conn, services, writes, run, step, ended, outputs, now, head)
    else:
        if writes is not None and not writes.send(conn):
            raise ClaimLost(writes.iid)
        done = _finish(conn, services, run, step, ended, outputs, now, head)
    if done is None:
        return None
    thread_id, status, version = done
    if error is not None:
        log.warning("step %s of run %s failed: %s", step.id, run.id, error)
    values = {**ended, "finished_at": now}
    view = replace(run.with_step(step.id, **values), status=status)
    return Resumed(view, step.id, thread_id, version, finished=values)


def _finish(
    conn: Connection, services: Services, run: RunView, step: Step, ended: Mapping[str, Any],
    outputs: dict[str, Any] | None, now: datetime, head: Head | None,
) -> tuple[str, str, int] | None:  # fmt: skip
    """End the gate, write its checkpoint, wake the run: (thread, run status, version)."""
    params = {"b_run": run.id, "b_step": step.id, "b_now": now, "b_status": ended["status"],
              "b_outputs": ended["outputs"], "b_error": ended["error"]}  # fmt: skip
    finished = prepared.execute(conn, _FINISH, params).first()
    if finished is None:
        return None
    thread_id = finished[0] or ""
    if outputs is not None and thread_id:  # what the node returned, as LangGraph keeps it
        services.graph.finish(conn, thread_id, outputs, head)
    status, version = prepared.execute(conn, _WAKE, {"b_run": run.id, "b_now": now}).one()
    return thread_id, status, version


def _send_with(
    conn: Connection, services: Services, writes: AnswerWrites, run: RunView, step: Step,
    ended: Mapping[str, Any], outputs: dict[str, Any] | None, now: datetime, head: Head | None,
) -> tuple[str, str, int] | None:  # fmt: skip
    """`_finish` with the answer's writes, in one statement (gate_writes.py)."""
    checkpoint = None
    if outputs is not None and head is not None:
        checkpoint = services.graph.finished_row(outputs, head)
    sent = gate_writes.send(conn, writes, run.id, step.id, ended, now, checkpoint)
    if not sent.claimed:
        raise ClaimLost(writes.iid)
    if sent.thread_id is None:  # not waiting: the answer alone is recorded
        return None
    if outputs is not None and sent.thread_id and not sent.checkpointed:
        services.graph.finish(conn, sent.thread_id, outputs)  # `head` was not its thread's
    assert sent.status is not None and sent.version is not None
    return sent.thread_id, sent.status, sent.version


class PassFailed(Exception):
    """The pass made in an answer's transaction failed (the transaction is rolled back):
    the caller answers again without it, and the pass follows the commit."""


class StepClaim:
    """What the transaction that closes a question does to its step, for one answer (all
    its tries): claim it to resume, or end it if it is a gate and, `inline`, make the
    run's next pass in that transaction too, so the step after the gate is claimed in the
    answer's commit. Called as `answers.OnClose` within `tried`; then `committed()`."""

    def __init__(
        self, services: Services, live: LiveRuns, advancer: Advancer, *, inline: bool = True
    ) -> None:
        self._services, self._live, self._advancer = services, live, advancer
        self.inline = inline
        self._kept: str | None = None  # the run whose state a try kept for its next pass
        self._settle: Settle | None = None  # the pass a try made in its transaction
        self._head: Head | None = None  # the step's newest checkpoint, read before

    def prefetch(self, iid: str) -> Mapping[str, Any] | None:
        """Question `iid` (None: no such question), read before the answer's transaction
        with its step's newest checkpoint, which a gate's finished checkpoint follows
        (answer_reads.py; the transaction answers from this row if it is still the
        question's version)."""
        for attempt in storage_attempts():
            with attempt, single_reads(self._services.engine) as conn:
                asked = answer_reads.read_question(conn, iid)
        if asked is None:
            return None
        head = asked.head_row
        self._head = None if head is None else self._services.saver.head_of(head)
        return asked.row

    def reader(
        self, iid: str
    ) -> Callable[[Connection], tuple[Mapping[str, Any], RunView] | None] | None:
        """On PostgreSQL, what the answer's first try reads in its transaction instead of
        `prefetch` before it: question `iid`, its run (the row locked) and its step's
        newest checkpoint, in one statement (answer_reads.py). None on SQLite, where a
        read before the transaction costs no round trip."""
        if self._services.engine.dialect.name != "postgresql":
            return None

        def read(conn: Connection) -> tuple[Mapping[str, Any], RunView] | None:
            asked = answer_reads.read_asked(conn, iid)
            if asked is None or asked.run is None:
                return None
            head = asked.head_row
            self._head = None if head is None else self._services.saver.head_of(head)
            return asked.row, asked.run

        return read

    def __call__(
        self, conn: Connection, row: Mapping[str, Any], run: RunView,
        writes: AnswerWrites | None = None,
    ) -> Resumed | None:  # fmt: skip
        self.rolled_back()  # a try before this one did not commit
        services = self._services
        now, wf = services.clock.now(), services.workflow_of(run)
        step = wf.step(row["step_id"])
        gate = row["purpose"] == "gate" and step.is_gate  # its answer is its result
        if gate:
            resumed = finish_gate(conn, services, run, step, row, now, self._head, writes)
        else:
            if writes is not None and not writes.send(conn):
                raise ClaimLost(writes.iid)
            resumed = claim_step(conn, run, step.id, now, services.replica)
        if resumed is None:
            return None
        # The run as claimed: the next pass starts from it and reads nothing.
        state = RunState(wf, resumed.run, resumed.version, self._advancer.handed(run.id))
        self._kept = run.id
        if not (gate and self.inline):
            self._live.memory.keep(run.id, state)
            return resumed
        try:
            self._settle = self._advancer.pass_within(conn, run.id, state)
        except Exception as exc:
            raise PassFailed(f"run {run.id}: the pass after gate {step.id} failed") from exc
        return resumed

    def tried(self, commit: Callable[[], T]) -> T:
        """`commit()`, the transaction this claim is called in; if the pass made there
        failed (it was rolled back), `commit()` again without it: the answer counts once
        either way, and the run's next pass follows the commit. What a try that did not
        commit kept is forgotten."""
        try:
            try:
                return commit()
            except PassFailed:
                log.exception("the pass in the answer's transaction failed; answering "
                              "again without it")  # fmt: skip
                self.rolled_back()
                self.inline = False
                return commit()
        except BaseException:
            self.rolled_back()
            raise

    def committed(self) -> bool:
        """The transaction committed: act on its pass (start what it claimed); False if it
        made none (the caller has the run advanced)."""
        settle, self._settle, self._kept = self._settle, None, None
        if settle is not None:
            settle(True)
        return settle is not None

    def rolled_back(self) -> None:
        """The transaction did not commit: forget what its try kept and granted."""
        if self._settle is not None:
            self._settle(False)
            self._settle = None
        if self._kept is not None:
            self._live.memory.forget(self._kept)
            self._kept = None
