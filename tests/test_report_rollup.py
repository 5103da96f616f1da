"""Reports keep the counts of closed days (report_day, migration 0018). A kept day must
read exactly as a count of its rows: when the day closes, after a row of it changes (a
late answer, a retry, a deleted run), and when a writer changes the day while it is
being rolled up. The reference is the same report counted row by row (a report for an
audience counts every row itself; these CLI runs have no channel, so that audience sees
them all) and `opsloop runs` (queries.recent_runs)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from orchestrator import queries
from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.reports import rollup
from orchestrator.reports.audience import Audience
from orchestrator.reports.build import build_report
from orchestrator.reports.figures import Report
from orchestrator.reports.window import Window
from orchestrator.runs import RUNS, STEPS
from storage.engine import is_sqlite, read_transaction, write_transaction
from tests.orchestrators import running
from tests.polling import until

DEPLOY = """
name: deploy
steps:
  - id: approve
    approval: {message: "Ship?", approvers: {users: [U0BOSS]}}
  - id: ship
    needs: approve
    shell: ["true"]
"""
FLAKY = """
name: flaky
steps:
  - id: boom
    shell: ["sh", "-c", "echo 'disk full' >&2; exit 3"]
"""
DAY = "2030-01-07"  # FakeClock starts at 09:00 that day
PARTS = {(DAY, part) for part in rollup.PARTS}


def kept(engine: sa.Engine) -> set[tuple[str, str]]:
    with read_transaction(engine) as conn:
        return set(conn.execute(sa.select(rollup.REPORT_DAY.c.day, rollup.REPORT_DAY.c.part)))


def counted(engine: sa.Engine, now: datetime) -> Report:
    """The same report with every row counted (no kept day is read)."""
    return build_report(engine, now, audience=Audience(channels=(None,)))


def checked(engine: sa.Engine, now: datetime) -> Report:
    """The report, checked against a row-by-row count and against `opsloop runs`."""
    report = build_report(engine, now)
    assert report == counted(engine, now)
    listed = Counter((r.workflow, r.status) for r in queries.recent_runs(engine, limit=1000))
    for runs in report.runs:
        for outcome in ("succeeded", "failed", "cancelled"):
            assert getattr(runs, outcome) == listed[runs.workflow, outcome], (runs, outcome)
    return report


def gate(orch: Orchestrator, run_id: str) -> str:
    assert orch.wait(run_id, timeout=30).status == "waiting"
    [interaction] = queries.open_interactions(orch.engine, run_id)
    return interaction.id


def step_version(engine: sa.Engine, run_id: str) -> int:
    with read_transaction(engine) as conn:
        return conn.execute(sa.select(STEPS.c.version).where(STEPS.c.run_id == run_id)).scalar_one()


def settled(orch: Orchestrator, run_id: str, status: str) -> None:
    until(lambda: orch.view(run_id).status == status, what=f"{run_id} {status}")


def test_a_closed_day_is_kept_and_stays_exact_as_its_rows_change(engine: sa.Engine) -> None:
    clock = FakeClock()
    with running(engine, DEPLOY, FLAKY, clock=clock) as orch:
        shipped = orch.start_run("deploy", {}, started_by="U0DEV")
        iid = gate(orch, shipped)
        clock.advance(timedelta(minutes=10))
        orch.decide(iid, "U0BOSS", "approve")
        settled(orch, shipped, "succeeded")
        flaky = orch.start_run("flaky", {}, started_by="U0DEV")
        settled(orch, flaky, "failed")
        late = orch.start_run("deploy", {}, started_by="U0DEV")
        late_gate = gate(orch, late)

        checked(engine, clock.now())
        assert not kept(engine) & PARTS  # today has not closed: counted, not kept

        clock.advance(timedelta(days=1))  # the day closes
        report = checked(engine, clock.now())
        assert kept(engine) >= PARTS
        deploy = report.runs[0]
        assert (deploy.succeeded, deploy.running, report.gates[0].open) == (1, 1, 1)
        assert report.days[-2].decision_p50_s == 600.0

        orch.decide(late_gate, "U0BOSS", "approve")  # a late answer: the gate, the run, a step
        settled(orch, late, "succeeded")
        assert not kept(engine) & PARTS  # dropped with the change, in its transaction
        report = checked(engine, clock.now())
        assert (report.runs[0].succeeded, report.runs[0].running, report.gates[0].open) == (2, 0, 0)
        assert report.days[-2].decision_p50_s == 600.0  # of 600 s and one day: nearest rank

        assert kept(engine) >= PARTS
        before = step_version(engine, flaky)
        orch.retry(flaky, None, by="U0DEV")  # a retry rewrites the day's step row
        until(lambda: step_version(engine, flaky) > before, what="the retry")
        settled(orch, flaky, "failed")
        assert (DAY, "steps") not in kept(engine)
        assert checked(engine, clock.now()).failing_steps[0].failures == 1

    with write_transaction(engine) as conn:  # a run deleted by hand, as an operator prunes
        for table in ("interaction", "step_run", "audit_log"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE run_id = :r"), {"r": shipped})
        conn.execute(sa.delete(RUNS).where(RUNS.c.id == shipped))
    assert not kept(engine) & PARTS
    report = checked(engine, clock.now())
    assert (report.runs[0].succeeded, report.gates[0].asked) == (1, 1)


def _seed_day(engine: sa.Engine) -> None:
    """One finished run with one step on DAY, written directly."""
    at = datetime(2030, 1, 7, 10, tzinfo=UTC)
    with write_transaction(engine) as conn:
        conn.execute(sa.insert(RUNS).values(
            id="r-kept", workflow="deploy", definition_hash="x", params={}, started_by="U0DEV",
            status="succeeded", version=0, created_at=at, started_at=at,
            finished_at=at + timedelta(seconds=5), updated_at=at))  # fmt: skip
        conn.execute(sa.insert(STEPS).values(
            run_id="r-kept", step_id="ship", workflow="deploy", run_created_at=at,
            status="succeeded", attempts=1, version=0, started_at=at,
            finished_at=at + timedelta(seconds=5), updated_at=at))  # fmt: skip


def test_a_roll_up_never_keeps_a_day_a_writer_is_changing(engine: sa.Engine) -> None:
    """Without the SHARE lock (PostgreSQL) the roll-up counts before the writer commits and
    keeps the old count: the writer's trigger found no row to delete. With it (NOWAIT) the
    roll-up leaves the day to a later report; on SQLite it waits for the writer."""
    _seed_day(engine)
    day = date(2030, 1, 7)
    changing, release = threading.Event(), threading.Event()

    def writer() -> None:
        with write_transaction(engine) as conn:
            conn.execute(sa.update(STEPS).where(STEPS.c.run_id == "r-kept")
                         .values(status="failed", error="late failure"))  # fmt: skip
            changing.set()
            release.wait(30)

    first = threading.Thread(target=writer)
    first.start()
    assert changing.wait(30)
    rolling = threading.Thread(target=rollup.ensure, args=(engine, [day]))
    rolling.start()
    if not is_sqlite(engine):  # SQLite: the roll-up queues behind the writer for its lock
        rolling.join(30)  # NOWAIT: it gives up at once rather than queue every writer
        assert not rolling.is_alive() and (DAY, "steps") not in kept(engine)
    release.set()
    first.join(30)
    rolling.join(30)
    rollup.ensure(engine, [day])  # a later report: the writer is gone
    assert (DAY, "steps") in kept(engine)
    window = Window(datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))
    with read_transaction(engine) as conn:
        from_kept = rollup.window_counts(conn, window, [day])
        from_rows = rollup.window_counts(conn, window, [])
    assert from_kept == from_rows
    assert from_kept.failing[("deploy", "ship")][0] == 1
