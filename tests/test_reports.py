"""Reports: runs with known outcomes and times, made by the real orchestrator on a fake
clock; every figure is checked against the known values and against what `opsloop runs`
and `opsloop show` read (queries.recent_runs, queries.run_view)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator import queries, runs
from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.reports import sql
from orchestrator.reports.build import build_report
from orchestrator.reports.figures import Report
from orchestrator.reports.sql import nearest_rank, percentiles
from storage.engine import read_transaction, write_transaction
from tests.orchestrators import running
from tests.polling import until

DEPLOY = """
name: deploy
params:
  auto: {type: bool, default: false}
steps:
  - id: approve
    auto_approve_if: "params.auto"
    approval:
      message: "Ship?"
      approvers: {users: [U0BOSS]}
      deadline: 1h
      on_deadline: reject
      remind_every: 25m
      escalate: {after: 55m, users: [U0LEAD]}
  - id: ship
    needs: approve
    shell: ["true"]
"""

FLAKY = """
name: flaky
steps:
  - id: boom
    shell: ["sh", "-c", "echo 'disk   full' >&2; exit 3"]
"""


def audited(engine: sa.Engine, action: str) -> int:
    with read_transaction(engine) as conn:
        stmt = sa.select(sa.func.count()).where(runs.AUDIT.c.action == action)
        return conn.execute(stmt).scalar_one()


def gate(orch: Orchestrator, run_id: str) -> str:
    assert orch.wait(run_id, timeout=30).status == "waiting"
    [interaction] = queries.open_interactions(orch.engine, run_id)
    return interaction.id


def finish(orch: Orchestrator, run_id: str, status: str) -> None:
    until(lambda: orch.view(run_id).status == status, what=f"{run_id} {status}")


def make_history(engine: sa.Engine, clock: FakeClock) -> dict[str, str]:
    """Seven runs over two days; see the test for what each should count as."""
    with running(engine, DEPLOY, FLAKY, clock=clock) as orch:
        ids = {}
        ids["r1"] = orch.start_run("deploy", {}, started_by="U0DEV")
        iid = gate(orch, ids["r1"])
        clock.advance(timedelta(minutes=10))
        orch.decide(iid, "U0BOSS", "approve")
        finish(orch, ids["r1"], "succeeded")

        ids["r2"] = orch.start_run("deploy", {}, started_by="U0DEV")
        iid = gate(orch, ids["r2"])
        clock.advance(timedelta(minutes=30))  # one reminder, at 25 min
        until(lambda: audited(engine, "interaction.reminded") == 1, what="reminder 1")
        orch.decide(iid, "U0BOSS", "reject", comment="not today")
        finish(orch, ids["r2"], "failed")

        ids["r3"] = orch.start_run("deploy", {}, started_by="U0DEV")
        gate(orch, ids["r3"])
        for n, minutes in ((2, 25), (3, 25)):  # reminders at 25 and 50 min
            clock.advance(timedelta(minutes=minutes))
            until(lambda n=n: audited(engine, "interaction.reminded") == n, what=f"reminder {n}")
        clock.advance(timedelta(minutes=7))  # 57 min: escalated
        until(lambda: audited(engine, "interaction.escalated") == 1, what="the escalation")
        clock.advance(timedelta(minutes=3))  # 60 min: the deadline rejects
        finish(orch, ids["r3"], "failed")

        ids["r4"] = orch.start_run("deploy", {"auto": True}, started_by="U0DEV")
        finish(orch, ids["r4"], "succeeded")

        clock.advance(timedelta(days=1))
        ids["r5"] = orch.start_run("flaky", {}, started_by="U0DEV")
        finish(orch, ids["r5"], "failed")
        ids["r7"] = orch.start_run("deploy", {}, started_by="U0DEV")
        gate(orch, ids["r7"])
        orch.cancel(ids["r7"], by="U0DEV")
        ids["r6"] = orch.start_run("deploy", {}, started_by="U0DEV")
        gate(orch, ids["r6"])
        clock.advance(timedelta(minutes=5))
    return ids


@pytest.fixture
def history(engine: sa.Engine) -> tuple[Report, dict[str, str], FakeClock]:
    clock = FakeClock()
    ids = make_history(engine, clock)
    return build_report(engine, clock.now()), ids, clock


def test_every_figure_of_a_known_history(
    engine: sa.Engine, history: tuple[Report, dict[str, str], FakeClock]
) -> None:
    report, ids, clock = history
    deploy, flaky = report.runs
    assert (deploy.workflow, deploy.succeeded, deploy.failed, deploy.cancelled,
            deploy.running) == ("deploy", 2, 2, 1, 1)  # fmt: skip
    assert (flaky.workflow, flaky.failed, flaky.total) == ("flaky", 1, 1)
    assert deploy.success_rate == 0.4 and report.success_rate == pytest.approx(2 / 6)
    assert (deploy.p50_s, deploy.p95_s) == (600.0, 3600.0)  # of 0, 0, 600, 1800, 3600
    assert report.slowest_steps[0].step_id == "approve"
    assert (report.slowest_steps[0].count, report.slowest_steps[0].p95_s) == (4, 3600.0)
    approve_fail, boom = report.failing_steps
    assert (approve_fail.step_id, approve_fail.failures, approve_fail.last_run_id) == (
        "approve", 2, ids["r3"])  # fmt: skip
    assert approve_fail.last_error == "rejected by opsloop"
    assert (boom.workflow, boom.failures) == ("flaky", 1) and "disk full" in boom.last_error
    [gates] = report.gates
    closed = (gates.approved, gates.rejected, gates.decided, gates.by_deadline, gates.cancelled)
    assert (gates.asked, *closed, gates.open, gates.auto_approved) == (5, 1, 1, 0, 1, 1, 1, 1)
    assert (gates.decision_p50_s, gates.decision_p90_s) == (600.0, 1800.0)
    assert report.decision_p50_s == 600.0  # one workflow asks: the same
    assert report.automation_rate == 0.5
    assert (report.reminders, report.escalations) == (3, 1)
    [waiting] = report.waiting
    assert (waiting.run_id, waiting.age_s, waiting.waits_for) == (ids["r6"], 300.0, ("U0BOSS",))
    assert len(report.days) == 8 and report.days[-1].day == clock.now().date().isoformat()
    day1, day2 = report.days[-2], report.days[-1]
    assert (day1.succeeded, day1.failed, day1.decision_p50_s) == (2, 2, 600.0)
    assert (day2.failed, day2.cancelled, day2.running, day2.decision_p50_s) == (1, 1, 1, None)
    outputs = report.to_json()
    assert (outputs["failed"], outputs["total"], outputs["waiting_count"]) == (3, 7, 1)


def test_the_figures_equal_what_runs_and_show_say(
    engine: sa.Engine, history: tuple[Report, dict[str, str], FakeClock]
) -> None:
    report, ids, _ = history
    listed = {r.id: r for r in queries.recent_runs(engine, limit=100)}  # `opsloop runs`
    deploy = [r for r in listed.values() if r.workflow == "deploy"]
    by_status = {
        s: sum(r.status == s for r in deploy) for s in ("succeeded", "failed", "cancelled")
    }
    assert by_status == {"succeeded": report.runs[0].succeeded, "failed": report.runs[0].failed,
                         "cancelled": report.runs[0].cancelled}  # fmt: skip
    took = [(r.finished_at - r.created_at).total_seconds() for r in deploy if r.finished_at]
    assert (nearest_rank(took, 50), nearest_rank(took, 95)) == (
        report.runs[0].p50_s, report.runs[0].p95_s)  # fmt: skip
    shown = [queries.run_view(engine, ids[k]) for k in ("r1", "r2", "r3", "r4")]  # `opsloop show`
    approve = [s.duration_s for run in shown for s in run.steps if s.step_id == "approve"]
    assert nearest_rank([d for d in approve if d is not None], 95) == report.slowest_steps[0].p95_s
    boom = next(s for s in queries.run_view(engine, ids["r5"]).steps if s.step_id == "boom")
    assert " ".join((boom.error or "").split()) == report.failing_steps[1].last_error
    assert [w.run_id for w in report.waiting] == [
        i.run_id for i in queries.open_interactions(engine)]  # fmt: skip


def test_a_window_and_a_workflow_filter_narrow_every_figure(
    engine: sa.Engine, history: tuple[Report, dict[str, str], FakeClock]
) -> None:
    _, _, clock = history
    flaky = build_report(engine, clock.now(), workflows=("flaky",))
    assert [r.workflow for r in flaky.runs] == ["flaky"]
    assert (flaky.gates, flaky.waiting, flaky.reminders, flaky.slowest_steps[0].step_id) == (
        (), (), 0, "boom")  # fmt: skip
    today = build_report(engine, clock.now(), since=timedelta(hours=1))
    [deploy, _] = today.runs
    assert (deploy.succeeded, deploy.failed, deploy.cancelled, deploy.running) == (0, 0, 1, 1)
    assert (today.reminders, today.escalations, len(today.waiting)) == (0, 0, 1)
    with pytest.raises(ValueError, match="1 s to"):
        build_report(engine, clock.now(), since=timedelta(0))


def test_missed_and_skipped_schedule_fires_come_from_the_audit_log(engine: sa.Engine) -> None:
    clock = FakeClock()
    with write_transaction(engine) as conn:
        now = clock.now()
        runs.audit(conn, "opsloop", "schedule.missed", now=now, schedule="nightly/1", count=3)
        runs.audit(conn, "opsloop", "schedule.missed", now=now, schedule="nightly/1", count=2)
        runs.audit(conn, "opsloop", "schedule.skipped", now=now, schedule="nightly/1")
        runs.audit(conn, "opsloop", "schedule.skipped", now=now - timedelta(days=8),
                   schedule="nightly/1")  # fmt: skip
    [fires] = build_report(engine, clock.advance(1)).schedules
    assert (fires.schedule_id, fires.missed, fires.skipped) == ("nightly/1", 5, 1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 19, 20, 21, 100])
def test_percentiles_in_sql_are_nearest_rank_on_both_databases(engine: sa.Engine, n: int) -> None:
    values = [float((i * 37) % 101) for i in range(n)]
    rows = sa.union_all(*(sa.select(sa.literal("k").label("key"), sa.literal(v).label("v"))
                          for v in values)).subquery()  # fmt: skip
    stmt = percentiles(sa.select(rows), ["key"], "v", [50, 90, 95])
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().one()
    assert row["n"] == n
    assert [row["p50"], row["p90"], row["p95"]] == [nearest_rank(values, p) for p in (50, 90, 95)]


def test_the_chart_is_a_png_under_200_kb_with_alt_text_in_words(
    engine: sa.Engine, history: tuple[Report, dict[str, str], FakeClock]
) -> None:
    from PIL import Image

    from orchestrator.reports.chart import alt_text, render_chart

    report, _, clock = history
    for since in (timedelta(days=7), timedelta(days=90)):
        png = render_chart(build_report(engine, clock.now(), since=since))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
        image = Image.open(io.BytesIO(png))
        image.load()  # decodes every pixel
        assert image.size == (900, 450)
    words = alt_text(report)
    assert "2 succeeded, 3 failed, 1 cancelled, 1 still running" in words
    assert "slowest was 2030-01-07 at 10 minutes" in words


def test_the_slack_message_fits_slacks_limits_and_mentions_who_is_waited_for(
    history: tuple[Report, dict[str, str], FakeClock],
) -> None:
    from dataclasses import replace

    from bot.slack.report_blocks import render_report
    from tests.slack_limits import message_problems

    report, ids, _ = history
    content = render_report(report, chart_note="chart below")
    assert message_problems(content) == []
    shown = str(content["blocks"])
    assert f"in `{ids['r6']}` for 5m 00s, waiting for <@U0BOSS>" in shown
    assert "`deploy.approve` failed 2 times" in shown and "*7* runs · *3* failed" in shown
    crowd = replace(report, waiting=report.waiting * 400)  # far more than a message holds
    content = render_report(crowd)
    assert message_problems(content) == []
    assert "more" in str(content["blocks"][-1])


def test_walking_an_index_to_the_rank_gives_the_same_figures_as_sorting(
    engine: sa.Engine, history: tuple[Report, dict[str, str], FakeClock],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Small groups are sorted, big ones walked in value order (sql.SORTED): the history
    here is small, so force the walk too and check every figure stays the same."""
    report, _, clock = history
    monkeypatch.setattr(sql, "SORTED", -1)
    assert build_report(engine, clock.now()) == report
