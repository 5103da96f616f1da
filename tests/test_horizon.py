"""Waiting costs nothing: a serving process holds timers only for what falls due soon
(orchestrator/horizon.py), and every deadline still fires on time and once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.horizon import WINDOW
from storage.engine import create_engine
from storage.models import AuditEntry
from storage.schema import setup
from tests.orchestrators import Nudges, running
from tests.polling import until

LATER = """
name: later
steps:
  - id: gate
    approval:
      message: "ok?"
      deadline: 3d
      remind_every: 2h
      escalate: {after: 1d, users: [U0BOSS]}
  - id: after
    needs: [gate]
    if: always()
    shell: ["true"]
"""

SOON = """
name: soon
steps:
  - id: gate
    approval: {message: "quick?", deadline: 2m}
"""


def _timer_jobs(orch: Orchestrator) -> set[str]:
    """The interaction timers the process holds in memory (APScheduler jobs)."""
    jobs = orch._timers.job_ids()
    return {job for job in jobs if job.startswith(("deadline:", "remind:", "escalate:"))}


def _audited(engine: sa.Engine, action: str, run_ids: list[str]) -> int:
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.action == action, table.c.run_id.in_(run_ids))
        ).scalar_one()


def _waiting(orch: Orchestrator, workflow: str, count: int) -> list[str]:
    ids = [orch.start_run(workflow, {}, started_by="U0RUN") for _ in range(count)]
    for run_id in ids:
        assert orch.wait(run_id, timeout=30).status == "waiting"
    return ids


def _gate_id(orch: Orchestrator, run_id: str) -> str:
    with orch.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id FROM interaction WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()


def test_only_gates_falling_due_soon_hold_timers_after_a_restart(engine: sa.Engine) -> None:
    clock = FakeClock()
    with running(engine, LATER, SOON, clock=clock) as cli:  # opens them, as `opsloop run` would
        later = _waiting(cli, "later", 4)
        soon = _waiting(cli, "soon", 2)
    with running(engine, LATER, SOON, clock=clock, recover=True) as serving:
        soon_jobs = {f"deadline:{_gate_id(serving, run_id)}" for run_id in soon}
        assert _timer_jobs(serving) == soon_jobs  # the four 3-day gates hold nothing
        clock.advance(timedelta(minutes=2))
        until(lambda: all(serving.view(r).status == "failed" for r in soon), what="soon expired")
        assert all(serving.view(r).status == "waiting" for r in later)
        # Two hours on, the first reminders come within the window: armed, sent once each.
        clock.advance(timedelta(hours=2) - timedelta(minutes=2) - WINDOW / 2)
        until(lambda: len(_timer_jobs(serving)) == 4, what="the reminders armed")
        assert all(job.startswith("remind:") for job in _timer_jobs(serving))


def test_a_deadline_far_beyond_the_window_fires_once_when_the_clock_jumps_there(
    engine: sa.Engine,
) -> None:
    clock, told = FakeClock(), Nudges()
    with running(engine, LATER, clock=clock, front_end=told, recover=True) as serving:
        (run_id,) = _waiting(serving, "later", 1)
        assert _timer_jobs(serving) == set()  # three days away: in the database only
        clock.advance(timedelta(days=3))
        until(lambda: serving.view(run_id).status == "failed", what="the deadline applied")
        statuses = {s.step_id: s.status for s in serving.view(run_id).steps}
        assert statuses == {"gate": "failed", "after": "succeeded"}
        assert _audited(engine, "interaction.deadline", [run_id]) == 1
        # Past its deadline a question is closed, not reminded nor escalated.
        assert (told.reminders, told.escalations) == ([], [])
        assert _timer_jobs(serving) == set()


def test_two_serving_replicas_on_one_database_fire_each_timer_once(
    engine: sa.Engine, db_url: str
) -> None:
    clock, told, other = FakeClock(), Nudges(), Nudges()
    with running(engine, LATER, clock=clock, front_end=told) as cli:
        runs = _waiting(cli, "later", 3)
    second_engine = create_engine(db_url)
    try:
        with (
            running(engine, LATER, clock=clock, front_end=told, recover=True) as one,
            running(second_engine, LATER, clock=clock, front_end=other, recover=True) as two,
        ):
            clock.advance(timedelta(hours=2))
            until(lambda: len(told.reminders) + len(other.reminders) == 3, what="reminders")
            clock.advance(timedelta(days=1))
            until(lambda: len(told.escalations) + len(other.escalations) == 3, what="escalated")
            # The next period's reminder, once however far the clock jumped.
            until(lambda: len(told.reminders) + len(other.reminders) == 6, what="reminders")
            clock.advance(timedelta(days=2))
            until(lambda: all(one.view(r).status == "failed" for r in runs), what="deadlines")
            one.sweep()
            two.sweep()
            two.view(runs[0])  # a round trip: time for a wrongly armed job to fire
            assert _audited(engine, "interaction.deadline", runs) == 3
            assert len(told.escalations) + len(other.escalations) == 3
            # The last jump may send one more per gate, or the deadline closes it first.
            reminded = len(told.reminders) + len(other.reminders)
            assert _audited(engine, "interaction.reminded", runs) == reminded <= 9
            for run_id in runs:
                after = next(s for s in one.view(run_id).steps if s.step_id == "after")
                assert (after.status, after.attempts) == ("succeeded", 1)
    finally:
        second_engine.dispose()


HALF_MINUTE = """
name: half_minute
steps:
  - id: gate
    approval: {message: "now?", deadline: 30s}
"""


@pytest.mark.postgres
def test_on_postgresql_a_question_another_process_opens_is_armed_at_once(pg_url: str) -> None:
    """Without the notice, the serving process would arm it at its next load (a minute
    of clock time, or the next sweep): 30 s late for a deadline 30 s away."""
    clock = FakeClock()
    serving_engine, cli_engine = create_engine(pg_url), create_engine(pg_url)
    setup(serving_engine)
    try:
        with running(serving_engine, HALF_MINUTE, clock=clock, recover=True) as serving:
            with running(cli_engine, HALF_MINUTE, clock=clock) as cli:  # as `opsloop run`
                (run_id,) = _waiting(cli, "half_minute", 1)
            gate = f"deadline:{_gate_id(serving, run_id)}"
            until(lambda: gate in _timer_jobs(serving), what="the notice to arm the deadline")
            clock.advance(30)
            until(lambda: serving.view(run_id).status == "failed", what="the deadline applied")
    finally:
        serving_engine.dispose()
        cli_engine.dispose()
