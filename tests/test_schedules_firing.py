"""Schedules at run time on SQLite and PostgreSQL: sync, exactly-once fires, catch-up,
overlap, pause/resume and the circuit breaker. Time is always an explicit `now`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator import runs
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.schedule_firing import Fire, fire_due, run_now, scheduled_run_id
from orchestrator.schedules import list_schedules, load, next_due, pause, resume, sync
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine, write_transaction
from storage.statuses import RunStatus

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday


def flow(schedules: str, name: str = "nightly") -> Workflow:
    text = f"""\
name: {name}
params:
  service: {{type: string, required: true}}
  replicas: {{type: int, default: 2}}
steps:
  - id: a
    shell: ["true"]
schedules:
{schedules}"""
    return parse_workflow(text, f"flows/{name}.yml")


HOURLY = '  - {id: h, cron: "0 * * * *", params: {service: api}, channel: C0OPS}\n'


def fire(engine: Engine, workflows: dict[str, Workflow], now: datetime, **kw: Any) -> list[Fire]:
    kicked: list[str] = []
    fires = fire_due(engine, workflows, now, started=kicked.append, **kw)
    assert kicked == [f.run_id for f in fires if f.outcome == "started"]
    return fires


def run_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs.RUNS).order_by(runs.RUNS.c.created_at)).mappings()
        return [dict(r) for r in rows]


def audits(engine: Engine, prefix: str = "schedule.") -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs.AUDIT).where(runs.AUDIT.c.action.like(f"{prefix}%"))
            .order_by(runs.AUDIT.c.id)
        ).mappings()  # fmt: skip
        return [dict(r) for r in rows]


def finish(engine: Engine, run_id: str, status: str) -> None:
    with write_transaction(engine) as conn:
        assert runs.set_run(conn, run_id, expect=[RunStatus.RUNNING], status=status)


# ---------------------------------------------------------------- sync


def test_sync_adds_once_and_keeps_identity_and_pause_across_edits(engine: Engine) -> None:
    wf = flow(HOURLY + '  - {cron: "30 2 * * *", timezone: Europe/Berlin, params: {service: db}}\n')
    changes = sync(engine, {wf.name: wf}, T0)
    assert [(c.schedule_id, c.action) for c in changes] == [("nightly/h", "added"),
                                                            ("nightly/2", "added")]  # fmt: skip
    assert sync(engine, {wf.name: wf}, T0) == []  # nothing changed, nothing audited
    assert load(engine, "nightly/h").next_fire_at == T0 + timedelta(hours=1)
    assert load(engine, "nightly/2").next_fire_at == datetime(2030, 1, 8, 1, 30, tzinfo=UTC)
    pause(engine, "nightly/h", "U0LEAD", "maintenance", T0)

    # The edit moves `h` below a new schedule and changes its cron and params.
    edited = flow(
        '  - {cron: "@daily", params: {service: web}}\n'
        '  - {id: h, cron: "*/15 * * * *", params: {service: api, replicas: 3}}\n'
    )
    changes = sync(engine, {edited.name: edited}, T0 + timedelta(minutes=1))
    assert {(c.schedule_id, c.action, c.fields) for c in changes} == {
        ("nightly/h", "changed", ("cron", "params", "channel")),
        ("nightly/1", "added", ()),
        ("nightly/2", "removed", ()),
    }
    h = load(engine, "nightly/h")
    assert (h.cron, h.params, h.channel) == (
        "*/15 * * * *",
        {"service": "api", "replicas": 3},
        None,
    )
    assert h.next_fire_at == T0 + timedelta(minutes=15)  # recomputed for the new cron
    assert (h.paused, h.paused_by, h.paused_reason) == (True, "U0LEAD", "maintenance")
    assert h.source == "flows/nightly.yml:10"
    assert not load(engine, "nightly/2").enabled
    actions = [(a["action"], a["detail"]["schedule"]) for a in audits(engine)]
    assert actions[-3:] == [("schedule.added", "nightly/1"), ("schedule.changed", "nightly/h"),
                            ("schedule.removed", "nightly/2")]  # fmt: skip

    # Put back: the removed schedule is restored with a fresh next fire.
    sync(engine, {wf.name: wf}, T0 + timedelta(days=2))
    back = load(engine, "nightly/2")
    assert back.enabled and back.next_fire_at == datetime(2030, 1, 10, 1, 30, tzinfo=UTC)
    assert audits(engine)[-1]["action"] == "schedule.removed"  # nightly/1 went away again


def test_two_replicas_syncing_at_once_add_each_schedule_once(db_url: str, engine: Engine) -> None:
    wf = flow("".join(f'  - {{id: s{i}, cron: "@hourly", params: {{service: a}}}}\n'
                      for i in range(20)))  # fmt: skip
    engines = [engine, create_engine(db_url)]
    results = race(lambda e: sync(e, {wf.name: wf}, T0), engines)
    assert sorted(c.schedule_id for r in results for c in r) == sorted(s.id for s in wf.schedules)
    assert len(audits(engine)) == 20
    engines[1].dispose()


# ---------------------------------------------------------------- firing


def race(call: Any, engines: list[Engine]) -> list[Any]:
    barrier = threading.Barrier(len(engines))
    results: list[Any] = [None] * len(engines)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call(engines[i])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    return results


def test_a_due_fire_starts_one_run_as_the_schedule(engine: Engine) -> None:
    wf = flow(HOURLY)
    sync(engine, {wf.name: wf}, T0)
    assert fire(engine, {wf.name: wf}, T0 + timedelta(minutes=59)) == []  # not yet due
    due = T0 + timedelta(hours=1)
    [fired] = fire(engine, {wf.name: wf}, due + timedelta(seconds=3))
    assert fired == Fire("nightly/h", due, "started", scheduled_run_id("nightly/h", due))
    [run] = run_rows(engine)
    assert run["id"] == fired.run_id and run["started_by"] == "schedule:nightly/h"
    assert (run["params"], run["channel"]) == ({"service": "api", "replicas": 2}, "C0OPS")
    assert run["front_end"] == "schedule" and run["status"] == "running"
    view = list_schedules(engine)[0]
    assert (view.last_fired_at, view.last_run_id, view.last_run_status) == (
        due,
        fired.run_id,
        "running",
    )
    assert view.next_fire_at == due + timedelta(hours=1) == next_due(engine)
    assert fire(engine, {wf.name: wf}, due + timedelta(seconds=4)) == []  # claimed already


def test_replicas_racing_fire_each_due_time_exactly_once(db_url: str, engine: Engine) -> None:
    line = '  - {{id: s{}, cron: "*/5 * * * *", params: {{service: a}}, overlap: allow}}\n'
    wf = flow("".join(line.format(i) for i in range(25)))
    sync(engine, {wf.name: wf}, T0)
    engines = [engine, create_engine(db_url), create_engine(db_url)]
    for minute in (5, 10):
        now = T0 + timedelta(minutes=minute)
        results = race(lambda e, now=now: fire(e, {wf.name: wf}, now), engines)
        started = [f for r in results for f in r if f.outcome == "started"]
        assert sorted(f.schedule_id for f in started) == sorted(s.id for s in wf.schedules)
        assert {f.outcome for r in results for f in r} <= {"started", "lost"}
    rows = run_rows(engine)
    assert len(rows) == 50 == len({r["id"] for r in rows})
    assert all(v.missed == 0 and v.next_fire_at == T0 + timedelta(minutes=15)
               for v in list_schedules(engine))  # fmt: skip
    for extra in engines[1:]:
        extra.dispose()


def test_downtime_counts_missed_fires_and_runs_at_most_one(engine: Engine) -> None:
    wf = flow(HOURLY + '  - {id: c, cron: "0 * * * *", params: {service: b}, catchup: 2h}\n')
    sync(engine, {wf.name: wf}, T0)
    now = T0 + timedelta(hours=5, minutes=30)  # down from 09:00 to 14:30: 10:00..14:00 due
    fires = {f.schedule_id: f for f in fire(engine, {wf.name: wf}, now)}
    assert (fires["nightly/h"].outcome, fires["nightly/h"].missed) == ("missed", 5)
    latest = T0 + timedelta(hours=5)
    assert fires["nightly/c"] == Fire("nightly/c", T0 + timedelta(hours=1), "started",
                                      scheduled_run_id("nightly/c", latest), missed=4)  # fmt: skip
    assert fires["nightly/c"].ran_for == latest  # the due time the delay metric counts from
    assert [r["started_by"] for r in run_rows(engine)] == ["schedule:nightly/c"]
    assert load(engine, "nightly/h").missed == 5
    assert load(engine, "nightly/h").next_fire_at == T0 + timedelta(hours=6)
    missed = [a["detail"]["count"] for a in audits(engine) if a["action"] == "schedule.missed"]
    assert sorted(missed) == [4, 5]


@pytest.mark.parametrize("overlap", ["skip", "allow", "cancel_previous"])
def test_overlap_policies_while_the_previous_run_runs(engine: Engine, overlap: str) -> None:
    wf = flow(f'  - {{id: o, cron: "@hourly", params: {{service: a}}, overlap: {overlap}}}\n')
    sync(engine, {wf.name: wf}, T0)
    cancelled: list[str] = []
    [first] = fire(engine, {wf.name: wf}, T0 + timedelta(hours=1))
    [second] = fire(engine, {wf.name: wf}, T0 + timedelta(hours=2), cancelled=cancelled.append)
    statuses = {r["id"]: r["status"] for r in run_rows(engine)}
    if overlap == "skip":
        assert second.outcome == "skipped" and statuses == {first.run_id: "running"}
        [skip] = [a for a in audits(engine) if a["action"] == "schedule.skipped"]
        assert skip["detail"]["reason"] == f"skipped: previous run {first.run_id} still running"
        assert skip["actor"] == "schedule:nightly/o" and skip["run_id"] == first.run_id
    elif overlap == "allow":
        assert second.outcome == "started" and set(statuses.values()) == {"running"}
    else:
        assert second.outcome == "started" and cancelled == [first.run_id]
        assert statuses == {first.run_id: "cancelled", second.run_id: "running"}
    finish(engine, next(r for r, s in statuses.items() if s == "running"), RunStatus.SUCCEEDED)
    [third] = fire(engine, {wf.name: wf}, T0 + timedelta(hours=3))
    assert third.outcome == "started"  # nothing runs any more: every policy starts


def test_pause_stops_fires_and_resume_starts_from_the_next(engine: Engine) -> None:
    wf = flow(HOURLY)
    sync(engine, {wf.name: wf}, T0)
    view = pause(engine, "nightly/h", "U0LEAD", "db migration", T0)
    assert view.paused and next_due(engine) is None
    assert fire(engine, {wf.name: wf}, T0 + timedelta(hours=3)) == []
    with pytest.raises(OrchestratorError, match="already paused by U0LEAD"):
        pause(engine, "nightly/h", "U0OTHER", "", T0)
    view = resume(engine, "nightly/h", "U0LEAD", T0 + timedelta(hours=3, minutes=10))
    assert not view.paused and view.next_fire_at == T0 + timedelta(hours=4)
    assert fire(engine, {wf.name: wf}, T0 + timedelta(hours=3, minutes=20)) == []
    assert [f.outcome for f in fire(engine, {wf.name: wf}, T0 + timedelta(hours=4))] == ["started"]
    assert view.missed == 0  # fires while paused are not missed: people paused them
    trail = [(a["action"], a["actor"], a["detail"]) for a in audits(engine)][1:]
    assert trail == [
        ("schedule.paused", "U0LEAD", {"schedule": "nightly/h", "reason": "db migration"}),
        ("schedule.resumed", "U0LEAD", {"schedule": "nightly/h"}),
    ]
    with pytest.raises(NotFound, match="schedules: nightly/h"):
        resume(engine, "nightly/x", "U0LEAD", T0)


def test_failed_runs_in_a_row_pause_the_schedule(engine: Engine) -> None:
    wf = flow('  - {id: b, cron: "@hourly", params: {service: a}, pause_after_failures: 2,'
              " channel: C0OPS}\n")  # fmt: skip
    sync(engine, {wf.name: wf}, T0)
    from orchestrator.schedules import run_finished

    def run_and_finish(hour: int, status: str) -> Any:
        [f] = fire(engine, {wf.name: wf}, T0 + timedelta(hours=hour))
        finish(engine, f.run_id, status)
        return run_finished(engine, f.run_id, T0 + timedelta(hours=hour, minutes=5))

    assert run_and_finish(1, RunStatus.FAILED) is None
    assert run_and_finish(2, RunStatus.SUCCEEDED) is None  # a success breaks the row
    assert run_and_finish(3, RunStatus.FAILED) is None
    notice = run_and_finish(4, RunStatus.FAILED)
    assert notice is not None and notice.channel == "C0OPS"
    assert notice.reason.startswith("2 failed runs in a row (pause_after_failures: 2)")
    view = load(engine, "nightly/b")
    assert view.paused and view.paused_by == "opsloop" and view.failures_in_row == 2
    last = view.last_run_id
    assert run_finished(engine, last, T0 + timedelta(hours=5)) is None  # counted once
    resume(engine, "nightly/b", "U0LEAD", T0 + timedelta(hours=5))
    assert run_and_finish(6, RunStatus.FAILED) is None  # the count starts again at resume
    assert load(engine, "nightly/b").failures_in_row == 1


def test_run_now_starts_through_the_same_insert_and_is_audited(engine: Engine) -> None:
    wf = flow(HOURLY)
    sync(engine, {wf.name: wf}, T0)
    kicked: list[str] = []
    run_id = run_now(engine, {wf.name: wf}, "nightly/h", "U0OPS", T0, started=kicked.append)
    assert kicked == [run_id] and run_id != scheduled_run_id("nightly/h", T0)
    [run] = run_rows(engine)
    assert run["started_by"] == "schedule:nightly/h" and run["channel"] == "C0OPS"
    [entry] = audits(engine, "schedule.run_now")
    assert (entry["actor"], entry["run_id"]) == ("U0OPS", run_id)
    assert load(engine, "nightly/h").next_fire_at == T0 + timedelta(hours=1)  # untouched


def test_a_fire_that_cannot_start_is_claimed_and_audited(engine: Engine) -> None:
    wf = flow(HOURLY)
    sync(engine, {wf.name: wf}, T0)
    [f] = fire(engine, {}, T0 + timedelta(hours=1))  # the workflow is gone from this process
    assert f.outcome == "failed" and run_rows(engine) == []
    [entry] = audits(engine, "schedule.failed")
    assert "workflow 'nightly' of schedule nightly/h is gone" in entry["detail"]["error"]
    assert load(engine, "nightly/h").next_fire_at == T0 + timedelta(hours=2)


def test_upgrade_to_0007_keeps_schedule_rows_with_defaults(db_url: str) -> None:
    from storage.schema import setup

    old = create_engine(db_url)
    setup(old, revision="0006")
    with old.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO schedule (id, kind, workflow, params, cron, timezone, enabled,"
            " created_by, created_at, version) VALUES ('nightly/1', 'workflow', 'nightly',"
            " '{}', '@daily', 'UTC', true, 'U1', CURRENT_TIMESTAMP, 4)"
        ))  # fmt: skip
    setup(old)
    view = load(old, "nightly/1")
    assert (view.overlap, view.catchup_s, view.paused, view.missed, view.version) == (
        "skip", 0.0, False, 0, 4)  # fmt: skip
    old.dispose()
