"""Recording a person's answer: permission, validation, one conditional UPDATE, audit; and,
when it closes the interaction, what the caller does in the same transaction (resuming.py),
which sends the answer's writes (answer_writes.py) with its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator import gates, interactions, locked_run, runs
from orchestrator.answer_writes import AnswerWrites, ClaimLost
from orchestrator.errors import AlreadyAnswered, InvalidAnswer, NotAllowed, NotFound
from orchestrator.interactions import INTERACTIONS
from orchestrator.protocol import RunView
from orchestrator.run_lock import RunLock
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.params import coerce_value
from storage.engine import single_reads, write_transaction
from storage.statuses import InteractionStatus

MAX_TRIES = 50  # quorum answers that lose a race re-read and try again


@dataclass(frozen=True)
class Recorded:
    """An answer committed: the interaction and the run as its transaction left them, and
    what `on_close` returned there (the answer closed the interaction)."""

    row: Mapping[str, Any]
    run: RunView
    closed: Any = None


# Called in the answer's transaction when it closes the interaction: (conn, row, run,
# writes). `writes`: the answer's own, not sent yet: the callee sends them (alone or with
# its own writes) and raises ClaimLost, having written nothing, if their claim lost; None:
# sent already.
OnClose = Callable[[Connection, Mapping[str, Any], RunView, AnswerWrites | None], Any]


# Reads the question and its run (the run's row locked) in the answer's transaction.
Read = Callable[[Connection], "tuple[Mapping[str, Any], RunView] | None"]


def record_answer(
    services: Services,
    iid: str,
    user: str,
    answer: Any,
    comment: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    lock: Callable[[str], RunLock] = lambda _run_id: RunLock(),
    on_close: OnClose | None = None,
    run_id: str | None = None,
    row: Mapping[str, Any] | None = None,
    read: Read | None = None,
) -> Recorded:
    """Apply one answer, holding `lock(run id)` around its transaction; what it committed.
    `run_id`: the interaction's run, if the caller read it (it never changes). `row`: the
    interaction, if the caller read it: the first try answers from it if it is pending
    (its claim holds it to the version read: if it changed, the claim loses and the next
    try reads it again), sparing a read in the transaction. `read`: the first try reads
    the question and its run with it, nothing before its transaction, and takes the run's
    lock then if it is free (else that try ends, having written nothing)."""
    if read is not None:
        done, run_id = _first_try(services, iid, user, answer, comment, params, lock,
                                  on_close, read)  # fmt: skip
        if done is not None:
            return done
    run_id = run_id or _run_of(services, iid)
    given = row if row is not None and row["status"] == InteractionStatus.PENDING else None
    for _ in range(MAX_TRIES):
        now = services.clock.now()
        with lock(run_id):
            for attempt in storage_attempts():
                with attempt, write_transaction(services.engine) as conn:
                    # The run's row is locked first, as every transaction that changes a
                    # run and its question does (resuming.py); read once, for the answer
                    # and for what follows it.
                    run = locked_run.load_locked(conn, run_id)
                    row = interactions.load_interaction(conn, iid) if given is None else given
                    given = None  # any later try reads it again
                    done, refused = _answer(services, conn, iid, row, run, user, answer,
                                            comment, params, now, on_close)  # fmt: skip
                    if done is not None:
                        return done
        if refused is not None:
            raise refused
    raise AlreadyAnswered(iid, "busy", None)


def _first_try(
    services: Services, iid: str, user: str, answer: Any, comment: str | None,
    params: Mapping[str, Any] | None, lock: Callable[[str], RunLock], on_close: OnClose | None,
    read: Read,
) -> tuple[Recorded | None, str | None]:  # fmt: skip
    """The answer's first try, from what `read` reads in its transaction: what it recorded
    (None: nothing, try again as usual), and the question's run (None: no such question).
    The run's lock is taken after the run's row, so only if it is free: a thread holding
    it may be waiting for that row."""
    now = services.clock.now()
    for attempt in storage_attempts():
        # `held` is released after the transaction ends.
        with attempt, ExitStack() as held, write_transaction(services.engine) as conn:
            asked = read(conn)
            if asked is None:
                return None, None
            row, run = asked
            run_lock = lock(run.id)
            if not run_lock.acquire(blocking=False):
                return None, run.id
            held.callback(run_lock.release)
            done, refused = _answer(services, conn, iid, row, run, user, answer, comment,
                                    params, now, on_close)  # fmt: skip
    if refused is not None:
        raise refused
    return done, run.id


def _answer(
    services: Services, conn: Connection, iid: str, row: Mapping[str, Any] | None,
    run: RunView | None, user: str, answer: Any, comment: str | None,
    params: Mapping[str, Any] | None, now: datetime, on_close: OnClose | None,
) -> tuple[Recorded | None, NotAllowed | None]:  # fmt: skip
    """Answer question `row` of `run` (the run's row locked) in `conn`'s transaction: what
    it recorded (None if another answer got to it first), or why `user` may not answer
    (the refusal is audited)."""
    if run is None or row is None:  # deleted meanwhile (db prune)
        raise NotFound(f"no interaction {iid!r}; `opsloop pending` lists the open ones")
    if row["status"] != InteractionStatus.PENDING:
        raise AlreadyAnswered(iid, row["status"], row["answered_by"])
    try:
        gates.check_allowed(row, user, run.started_by, services.directory)
    except NotAllowed as exc:
        runs.audit(conn, user, "interaction.refused", now=now, run_id=run.id,
                   interaction_id=iid, reason=str(exc))  # fmt: skip
        return None, exc
    return _apply(services, conn, row, run, user, answer, comment, params, now, on_close), None


def _run_of(services: Services, iid: str) -> str:
    """The run of interaction `iid` (it never changes); NotFound if there is none."""
    for attempt in storage_attempts():
        with attempt, single_reads(services.engine) as conn:
            run_id = conn.execute(
                sa.select(INTERACTIONS.c.run_id).where(INTERACTIONS.c.id == iid)
            ).scalar()
    if run_id is None:
        raise NotFound(f"no interaction {iid!r}; `opsloop pending` lists the open ones")
    return run_id


def _apply(
    services: Services, conn: Connection, row: Mapping[str, Any], run: RunView, user: str,
    answer: Any, comment: str | None, params: Mapping[str, Any] | None, now: datetime,
    on_close: OnClose | None,
) -> Recorded | None:  # fmt: skip
    """Claim the interaction with the answer and audit it, and call `on_close` if that
    closed it; None if another answer got to it first (the caller reads it again)."""
    iid = row["id"]
    changes = _param_changes(services, conn, row, answer, params) if params else {}
    outcome = gates.apply_answer(row, user, answer, comment, now)
    if changes:  # the gate message shows the diff with the answer
        outcome.responses[-1]["changes"] = _diff(conn, row["run_id"], changes)
    values: dict[str, Any] = {"status": outcome.status, "responses": outcome.responses}
    if outcome.closed:
        values.update(answer=outcome.answer, answered_by=user, answered_at=now)
    detail = {"answer": answer, "comment": comment, "status": str(outcome.status)}
    writes = AnswerWrites(iid, row["version"], values, {
        "at": now, "actor": user, "action": "interaction.answered", "run_id": row["run_id"],
        "interaction_id": iid, "detail": detail})  # fmt: skip
    # What the claim writes, without reading it back.
    after = {**row, **values, "version": row["version"] + 1}
    if outcome.closed and on_close is not None and not changes:
        try:  # sent by on_close, with what it writes
            return Recorded(after, run, on_close(conn, after, run, writes))
        except ClaimLost:
            return None
    if not writes.send(conn):
        return None
    if changes:
        run = replace(run, params=_change_params(conn, row["run_id"], user, iid, changes, now))
    if outcome.closed and on_close is not None:
        return Recorded(after, run, on_close(conn, after, run, None))
    return Recorded(after, run)


def _param_changes(
    services: Services, conn: Connection, row: Mapping[str, Any], answer: Any,
    params: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The typed values of `params`, checked against the gate; InvalidAnswer otherwise."""
    if row["kind"] != "approval" or str(answer).strip().lower() not in gates.APPROVE_WORDS:
        raise InvalidAnswer("params can only be changed while approving")
    editable = set(row["editable_params"] or ())
    refused = sorted(set(params) - editable)
    if refused:
        allowed = ", ".join(sorted(editable)) or "none"
        raise InvalidAnswer(f"this gate does not let you change {', '.join(refused)}; "
                            f"editable here: {allowed}")  # fmt: skip
    workflow_name, digest = conn.execute(
        sa.select(runs.RUNS.c.workflow, runs.RUNS.c.definition_hash).where(
            runs.RUNS.c.id == row["run_id"]
        )
    ).one()
    declared = {p.name: p for p in services.versions.of(workflow_name, digest).params}
    unknown = sorted(set(params) - set(declared))
    if unknown:  # only a question asked by a task (ctx.ask) can name such a param
        raise InvalidAnswer(f"the run has no param {', '.join(unknown)}; "
                            f"its params: {', '.join(sorted(declared)) or 'none'}")  # fmt: skip
    return {name: coerce_value(declared[name], value) for name, value in params.items()}


def _diff(conn: Connection, run_id: str, changes: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{param: [before, after]} for each param `changes` gives a new value."""
    before = conn.execute(sa.select(runs.RUNS.c.params).where(runs.RUNS.c.id == run_id)).scalar()
    return {k: [(before or {}).get(k), v] for k, v in changes.items()
            if (before or {}).get(k) != v}  # fmt: skip


def _change_params(
    conn: Connection, run_id: str, user: str, iid: str, changes: Mapping[str, Any], now: Any
) -> dict[str, Any]:
    """Apply `changes` to the run's params (audited); the params after."""
    before = conn.execute(sa.select(runs.RUNS.c.params).where(runs.RUNS.c.id == run_id)).scalar()
    after = {**(before or {}), **changes}
    if after == before:
        return after
    conn.execute(sa.update(runs.RUNS).where(runs.RUNS.c.id == run_id).values(params=after))
    runs.audit(conn, user, "run.params_changed", now=now, run_id=run_id, interaction_id=iid,
               before={k: (before or {}).get(k) for k in changes}, after=dict(changes))  # fmt: skip
    return after
