"""People's side of a run: a step parked at a question, answers, and what time does to
an open question (deadlines, reminders, escalations, on orchestrator/timers.py).

The database is the truth: each pending interaction's `deadline`, `next_reminder_at`
and `escalate_at` columns. The timers only hold jobs derived from them (`watch`), so
a restart loses nothing, and a deadline that passed while no process watched it is
applied as soon as one does. Applying a deadline is a conditional UPDATE, so it happens
exactly once even if a person answers in the same instant or two replicas both fire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orchestrator import answers, gates, interactions, log_context, notices, resuming, runs
from orchestrator.advancing import Advancer
from orchestrator.horizon import DUE_SOON, Horizon
from orchestrator.live import LiveRuns
from orchestrator.protocol import InteractionView
from orchestrator.runs import SYSTEM
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.timers import Timers
from storage.claims import claim
from storage.engine import read_transaction, write_transaction
from storage.models import Interaction
from storage.statuses import InteractionStatus, StepStatus

# The answer to a crash-recovery question, for recovery.py to apply (the step is running).
OnRecoveryAnswer = Callable[[Mapping[str, Any]], None]


class People:
    def __init__(
        self, services: Services, live: LiveRuns, advancer: Advancer, timers: Timers,
        on_recovery_answer: OnRecoveryAnswer, listener: notices.Listener | None = None,
    ) -> None:  # fmt: skip
        self._services = services
        self._live = live
        self._advancer = advancer
        self._timers = timers
        self._on_recovery_answer = on_recovery_answer
        self._stopped = False  # a graceful stop: no timers armed any more
        self._horizon = Horizon(services, timers, arm=self.watch, expire=self.expire,
                                listener=listener)  # fmt: skip

    # -- questions ----------------------------------------------------------------

    def park(self, run_id: str, step_id: str, pending: Any) -> None:
        """A step paused at a question: it waits, and the question is told (or, answered
        meanwhile, the step resumes at once)."""
        iid = pending.value["interaction_id"]
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                runs.bump_run(conn, run_id)  # the run's row first: see resuming.py
                runs.set_step(  # held_at: a hold's mark never outlives a question (held_steps.py)
                    conn, run_id, step_id, expect=[StepStatus.RUNNING], status=StepStatus.WAITING,
                    updated_at=self._services.clock.now(), signal=False, held_at=None,
                )  # fmt: skip
                conn.execute(
                    sa.update(interactions.INTERACTIONS)
                    .where(interactions.INTERACTIONS.c.id == iid)
                    .values(interrupt_id=pending.id)
                )
                row = interactions.load_interaction(conn, iid)
                if row is not None and Horizon.due_soon(row, self._services.clock.now()):
                    notices.notify(conn, DUE_SOON, self._services.replica)  # others arm it
        assert row is not None
        self._live.step_changed(run_id, step_id, status=StepStatus.WAITING)
        self.opened(row)

    def opened(self, row: Mapping[str, Any]) -> None:
        """A question was committed: watch its times and tell the front end, or, if it
        was answered before its step finished pausing, resume the step."""
        if row["status"] == InteractionStatus.PENDING:
            self.watch(row)
            self._services.front_end.interaction_opened(
                self._services.view(row["run_id"]), interactions.interaction_view(row)
            )
        else:
            self.resume_interaction(row["id"])

    def decide(
        self, iid: str, user: str, answer: Any, comment: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> InteractionView:  # fmt: skip
        """Record `user`'s answer exactly once and resume the step when the question closes."""
        with log_context.bound(interaction_id=iid):
            return self._decide(iid, user, answer, comment, params)

    def _decide(
        self, iid: str, user: str, answer: Any, comment: str | None,
        params: Mapping[str, Any] | None,
    ) -> InteractionView:  # fmt: skip
        # Draining: the step stays waiting, and the next start's sweep resumes it.
        claim = None if self._advancer.draining else self._claim()
        read = None if claim is None else claim.reader(iid)  # PostgreSQL: in its transaction
        asked = None if claim is None or read is not None else claim.prefetch(iid)

        def record() -> answers.Recorded:
            return answers.record_answer(self._services, iid, gates.person(user), answer,
                                         comment, params, lock=self._advancer.run_lock,
                                         on_close=claim, run_id=asked and asked["run_id"],
                                         row=asked, read=read)  # fmt: skip

        done = record() if claim is None else claim.tried(record)
        row = done.row
        view = interactions.interaction_view(row)
        self._services.front_end.interaction_updated(done.run, view)
        if row["status"] != InteractionStatus.PENDING:
            self.forget(iid)
            if done.closed is not None:
                assert claim is not None
                self._resume(row, done.closed, claim)
            else:  # its step was not waiting yet: park sees the answer, or this claims it
                self.resume_interaction(iid)
        return view

    def _claim(self) -> resuming.StepClaim:
        """What the transaction that closes a question does to its step (resuming.py)."""
        return resuming.StepClaim(self._services, self._live, self._advancer)

    def resume_interaction(self, iid: str) -> None:
        """Continue the step behind a closed interaction, once, whoever calls."""
        for attempt in storage_attempts():
            with attempt, read_transaction(self._services.engine) as conn:
                row = interactions.load_interaction(conn, iid)
        if row is None or row["status"] == InteractionStatus.PENDING or self._advancer.draining:
            return  # draining: the step stays waiting, and the next start's sweep resumes it
        # Under the run's lock: an advance pass that read the step as waiting would
        # otherwise settle the run as waiting after this made the step run again.
        claim = self._claim()

        def claimed() -> resuming.Resumed | None:
            for attempt in storage_attempts():
                with attempt, write_transaction(self._services.engine) as conn:
                    run = runs.load_run(conn, row["run_id"], lock=True)
                    resumed = None if run is None else claim(conn, row, run)
            return resumed

        with self._advancer.run_lock(row["run_id"]):
            resumed = claim.tried(claimed)
        if resumed is not None:
            self._resume(row, resumed, claim)

    def _resume(
        self, row: Mapping[str, Any], resumed: resuming.Resumed, claim: resuming.StepClaim
    ) -> None:
        """Hand a claimed step its answer: it runs on the pool with the run as read. A gate
        ended by its answer (`resumed.finished`): what follows it was claimed in the same
        commit and starts now (or the run's next pass is made here)."""
        run = resumed.run
        if resumed.finished is not None:
            self._live.step_changed(run.id, resumed.step_id, fallback=run, **resumed.finished)
            if not claim.committed():
                self._advancer.advance(run.id)
            return
        claim.committed()
        self._live.step_changed(run.id, resumed.step_id, fallback=run, status=StepStatus.RUNNING)
        if row["purpose"] == "recovery":
            self._on_recovery_answer(row)
            return
        # The one interrupt pending in the step's thread: resumed by value, not by its id
        # (which the commit that parked the step may have written after `row` was read).
        self._advancer.resume_step(run.id, resumed.step_id, resumed.thread_id,
                                   resuming.resolution(row), run.workflow, run=run,
                                   asked=row["id"])  # fmt: skip

    # -- time ---------------------------------------------------------------------

    def watch_run(self, run_id: str | None) -> None:
        """Watch the deadlines and reminders of one run's open interactions, or (None)
        of every one falling due soon (horizon.py: the rest are armed as time comes).

        A deadline that passed while no process watched it is applied now,
        before this returns, so a caller that waits next sees its outcome.
        """
        if run_id is None:
            self._horizon.load()
            return
        with read_transaction(self._services.engine) as conn:
            pending = interactions.pending_interactions(conn, run_id)
        now = self._services.clock.now()
        for row in pending:
            if row["deadline"] is not None and row["deadline"] <= now:
                self.expire(row["id"])
            else:
                self.watch(row)

    def watch(self, row: Mapping[str, Any]) -> None:
        """Set the timers of one pending interaction that fall due within the horizon."""
        iid, now = row["id"], self._services.clock.now()
        if self._stopped:
            return
        if row["deadline"] is not None:
            self._at(row["deadline"], f"deadline:{iid}", self.expire, iid)
        if row.get("escalate_at") and not row.get("escalated_at"):
            self._at(row["escalate_at"], f"escalate:{iid}", self.escalate, iid)
        every = row["remind_every_s"]
        if every:
            first = row["next_reminder_at"] or now + timedelta(seconds=every)
            self._at(first, f"remind:{iid}", self.remind, iid, first, every)

    def _at(self, when: datetime, job_id: str, fn: Callable[..., None], *args: Any) -> None:
        if self._horizon.covers(when):  # else the load whose window reaches it arms it
            self._timers.at(when, job_id, fn, *args)

    def stop_timers(self) -> None:
        """Fire no more deadlines, reminders or escalations here (a graceful stop): they
        are in the database, and the next process to start watches them again."""
        self._stopped = True
        self._horizon.stop()
        for job in self._timers.job_ids():
            if job.startswith(("deadline:", "escalate:", "remind:")):
                self._timers.cancel(job)

    def forget(self, iid: str) -> None:
        """Drop the timers of an interaction that closed."""
        for job in ("deadline", "remind", "escalate"):
            self._timers.cancel(f"{job}:{iid}")

    def expire(self, iid: str) -> None:
        """Apply an interaction's deadline action, unless someone answered first."""
        now = self._services.clock.now()
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                row = interactions.load_interaction(conn, iid)
                if row is None or row["status"] != InteractionStatus.PENDING:
                    return
                outcome = gates.deadline_outcome(row, now)
                if not claim(
                    conn, Interaction, iid, expect=[InteractionStatus.PENDING],
                    version=row["version"],
                    values={"status": outcome.status, "answer": outcome.answer,
                            "responses": outcome.responses, "answered_by": SYSTEM,
                            "answered_at": now},
                ):  # fmt: skip
                    return
                runs.audit(conn, SYSTEM, "interaction.deadline", now=now, run_id=row["run_id"],
                           interaction_id=iid, outcome=outcome.status)  # fmt: skip
                row = interactions.load_interaction(conn, iid)
        assert row is not None
        self.forget(iid)
        self._services.front_end.interaction_updated(
            self._services.view(row["run_id"]), interactions.interaction_view(row)
        )
        self.resume_interaction(iid)

    def remind(self, iid: str, due: datetime, every_s: float) -> None:
        """Remind the people an open interaction waits for, once per period across replicas
        and sweeps: the reminder is sent by whoever moves `next_reminder_at` past `due`."""
        now, step = self._services.clock.now(), timedelta(seconds=every_s)
        # Once however far time jumped (a late process, a test's clock): no burst.
        nxt = due + step * (max(0, int((now - due) / step)) + 1)
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                won = _claim_reminder(conn, iid, due, nxt)
                row = interactions.load_interaction(conn, iid)
                if won and row is not None:
                    # Reports count reminders from the audit log.
                    runs.audit(conn, SYSTEM, "interaction.reminded", now=now,
                               run_id=row["run_id"], interaction_id=iid)  # fmt: skip
        if row is None or row["status"] != InteractionStatus.PENDING:
            self.forget(iid)
            return
        if won:
            self._services.front_end.reminder(
                self._services.view(row["run_id"]), interactions.interaction_view(row)
            )
        following = row["next_reminder_at"] or nxt  # another replica may have moved it on
        if not self._stopped:
            self._at(following, f"remind:{iid}", self.remind, iid, following, every_s)

    def escalate(self, iid: str) -> None:
        """Tell the escalation contacts of a still-open interaction, once across replicas."""
        now = self._services.clock.now()
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                won = _claim_escalation(conn, iid, now)
                row = interactions.load_interaction(conn, iid)
                if won and row is not None:
                    runs.audit(conn, SYSTEM, "interaction.escalated", now=now,
                               run_id=row["run_id"], interaction_id=iid,
                               to=row["escalate_to"])  # fmt: skip
        if won and row is not None:
            self._services.front_end.escalated(
                self._services.view(row["run_id"]), interactions.interaction_view(row)
            )


def _claim_reminder(conn: sa.Connection, iid: str, due: datetime, nxt: datetime) -> bool:
    """Move a still-open interaction's next reminder from `due` to `nxt`; True for the one
    caller that did (a row written before reminders were claimed has none: it counts)."""
    table = interactions.INTERACTIONS
    current = sa.or_(table.c.next_reminder_at == due, table.c.next_reminder_at.is_(None))
    stmt = (
        sa.update(table)
        .where(table.c.id == iid, table.c.status == InteractionStatus.PENDING, current)
        .values(next_reminder_at=nxt)
    )
    return conn.execute(stmt).rowcount == 1


def _claim_escalation(conn: sa.Connection, iid: str, now: datetime) -> bool:
    """Mark a still-open interaction escalated; True for the one caller that did."""
    stmt = (
        sa.update(interactions.INTERACTIONS)
        .where(
            interactions.INTERACTIONS.c.id == iid,
            interactions.INTERACTIONS.c.status == InteractionStatus.PENDING,
            interactions.INTERACTIONS.c.escalated_at.is_(None),
        )
        .values(escalated_at=now)
    )
    return conn.execute(stmt).rowcount == 1
