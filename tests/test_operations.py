"""/metrics and /readyz on the real HTTP server, against what really happened.

Runs are started with signed slash commands and a gate approved with a signed click,
as Slack would; then /metrics is scraped over HTTP, parsed with prometheus_client's
own parser, and each value compared with the database and the Slack double's record.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.metrics import DatabaseCollector, Metrics, ObservedFrontEnd
from bot.settings import Settings, SettingsError
from bot.slack import ids
from bot.slack.delivery import web_client
from bot.slack.outbox import Outbox
from bot.slack.readiness import Readiness
from orchestrator import runs
from orchestrator.clock import FakeClock
from orchestrator.protocol import SilentFrontEnd
from orchestrator.queries import recent_runs
from storage.engine import create_engine
from storage.schema import setup
from tests.bot_harness import Harness, serving
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import GATED
from tests.scraped import Samples, collected, parsed, value
from tests.slack_double import SlackDouble

CHANNEL = "C0OPS"
HELLO = 'name: hello\nsteps:\n  - id: hi\n    shell: ["true"]\n'
BROKEN = 'name: broken\nsteps:\n  - id: oops\n    shell: ["false"]\n'
# Both first steps wait for the test's release file; max_parallel 1 queues one of them.
QUEUED = """name: queued
max_parallel: 1
steps:
  - id: one
    shell: ["sh", "-c", "while [ ! -e {release} ]; do sleep 0.02; done"]
  - id: two
    shell: ["sh", "-c", "while [ ! -e {release} ]; do sleep 0.02; done"]
  - id: last
    needs: [one, two]
    shell: ["true"]
"""
NUDGED = """name: nudged
steps:
  - id: gate
    approval:
      message: "ok?"
      approvers: {users: [U0BOSS]}
      remind_every: 10m
      escalate: {after: 25m, users: [U0ONCALL]}
      deadline: 1h
      on_deadline: reject
"""


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    flows = {"gated": GATED, "hello": HELLO, "broken": BROKEN,
             "queued": QUEUED.format(release=tmp_path / "release"), "nudged": NUDGED}  # fmt: skip
    with SlackDouble() as slack, serving(db_url, tmp_path, slack, flows, CHANNEL) as harness:
        yield harness


def get(harness: Harness, path: str) -> tuple[int, bytes]:
    url = harness.url.rsplit("/slack/", 1)[0] + path
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(harness: Harness) -> Samples:
    status, body = get(harness, "/metrics")
    assert status == 200
    return parsed(body)


def finish(harness: Harness, text: str, status: str, seen: set[str]) -> str:
    """Send `/ops <text>`; the new run's id once it is `status`."""
    assert harness.command(text)[0] == 200
    engine = harness.bot.orch.engine
    run_id = until(lambda: next((r.id for r in recent_runs(engine, 100) if r.id not in seen),
                                None), what=f"the run of {text!r}")  # fmt: skip
    seen.add(run_id)
    until(lambda: harness.status(run_id) == status, what=f"{text!r} to be {status}")
    return run_id


def test_scraped_metrics_equal_what_happened(harness: Harness) -> None:
    seen: set[str] = set()
    finish(harness, "run hello", "succeeded", seen)
    finish(harness, "run hello", "succeeded", seen)
    finish(harness, "run broken", "failed", seen)
    approved = finish(harness, "run gated service=api", "waiting", seen)
    finish(harness, "run gated service=web", "waiting", seen)
    gate = harness.gate(approved, "Ship api?")
    assert harness.click(gate.blocks, ids.APPROVE, "U0BOSS")[0] == 200
    until(lambda: harness.status(approved) == "succeeded", what="the approved run")
    outbox = Outbox(harness.bot.orch.engine)
    until(lambda: outbox.backlog()[0] == 0, what="the outbox to drain")
    harness.clock.advance(90)  # the open gate has waited a minute and a half

    m = scrape(harness)
    assert value(m, "opsloop_runs_started_total", workflow="hello") == 2
    assert value(m, "opsloop_runs_started_total", workflow="gated") == 2
    assert value(m, "opsloop_runs_finished_total", workflow="hello", status="succeeded") == 2
    assert value(m, "opsloop_runs_finished_total", workflow="broken", status="failed") == 1
    assert value(m, "opsloop_runs_finished_total", workflow="gated", status="succeeded") == 1
    assert value(m, "opsloop_run_duration_seconds_count", workflow="hello") == 2
    assert value(m, "opsloop_runs_active", workflow="gated", status="waiting") == 1
    assert value(m, "opsloop_gates_opened_total", workflow="gated", kind="approval") == 2
    assert value(m, "opsloop_gates_pending", workflow="gated", kind="approval") == 1
    assert value(m, "opsloop_gate_oldest_pending_seconds", workflow="gated") >= 90
    assert value(m, "opsloop_gate_decision_seconds_count", kind="approval",
                 outcome="approved") == 1  # fmt: skip
    # shell steps: hi x2, build x2, ship x1 succeeded; oops failed
    assert value(m, "opsloop_steps_finished_total", kind="shell", status="succeeded") == 5
    assert value(m, "opsloop_steps_finished_total", kind="shell", status="failed") == 1
    assert value(m, "opsloop_steps_finished_total", kind="approval", status="succeeded") == 1
    assert value(m, "opsloop_step_duration_seconds_count", kind="shell", status="failed") == 1
    assert value(m, "opsloop_outbox_backlog") == 0
    for method in ("chat.postMessage", "chat.update"):
        sent = len(harness.slack.calls(method, ok=True))
        assert sent and value(m, "opsloop_slack_api_calls_total", method=method,
                              outcome="ok") == sent  # fmt: skip
    assert value(m, "opsloop_slack_api_calls_total", method="auth.test", outcome="ok") == 1
    assert any(name == "opsloop_build_info" for name, _ in m)
    assert not [k for k in m if any(v.startswith(("r-", "U0")) for _, v in k[1])], "ids as labels"


def test_ready_to_started_delay_is_one_sample_per_step_in_its_bucket(
    harness: Harness, tmp_path: Path
) -> None:
    seen: set[str] = set()
    finish(harness, "run hello", "succeeded", seen)
    assert harness.command("run queued")[0] == 200
    engine = harness.bot.orch.engine
    run_id = until(lambda: next((r.id for r in recent_runs(engine, 100) if r.id not in seen),
                                None), what="the queued run")  # fmt: skip
    running = lambda: [s.step_id for s in harness.bot.orch.view(run_id).steps  # noqa: E731
                       if s.status == "running"]  # fmt: skip
    until(running, what="one of the two steps to start")
    harness.clock.advance(45)  # the other waits 45 s for the only slot max_parallel gives
    (tmp_path / "release").touch()
    until(lambda: harness.status(run_id) == "succeeded", what="the queued run to end")

    m = scrape(harness)
    count = value(m, "opsloop_step_ready_delay_seconds_count", kind="shell")
    assert count == 4  # hello's hi; one, two and last: each step once, however it ran
    assert value(m, "opsloop_step_ready_delay_seconds_bucket", kind="shell", le="15.0") == 3
    assert value(m, "opsloop_step_ready_delay_seconds_bucket", kind="shell", le="60.0") == 4
    assert value(m, "opsloop_step_ready_delay_seconds_sum", kind="shell") == pytest.approx(45)


def audited(harness: Harness, action: str) -> int:
    audit = runs.AUDIT
    with harness.bot.orch.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(audit).where(audit.c.action == action)
        return int(conn.execute(query).scalar() or 0)


def test_reminders_escalations_and_deadlines_are_counted_as_audited(harness: Harness) -> None:
    run_id = finish(harness, "run nudged", "waiting", set())
    harness.clock.advance(10 * 60)
    until(lambda: audited(harness, "interaction.reminded") == 1, what="the 10 min reminder")
    harness.clock.advance(15 * 60)
    until(lambda: audited(harness, "interaction.escalated") == 1, what="the escalation")
    harness.clock.advance(35 * 60)
    until(lambda: harness.status(run_id) == "failed", what="the deadline to reject")
    # The front end is told just after the commit: wait for the run's end to be counted.
    m = until(lambda: next((m for m in [scrape(harness)] if value(
        m, "opsloop_runs_finished_total", workflow="nudged", status="failed")), None),
        what="the run's end counted")  # fmt: skip
    reminded = audited(harness, "interaction.reminded")
    assert reminded >= 1 and value(m, "opsloop_gate_reminders_total", workflow="nudged") == reminded
    assert value(m, "opsloop_gate_escalations_total", workflow="nudged") == 1
    assert value(m, "opsloop_gate_deadline_actions_total", workflow="nudged", action="reject") == 1
    assert value(m, "opsloop_gate_decision_seconds_count", kind="approval", outcome="deadline") == 1
    assert value(m, "opsloop_gate_decision_seconds_sum", kind="approval",
                 outcome="deadline") == pytest.approx(3600)  # fmt: skip
    assert value(m, "opsloop_runs_finished_total", workflow="nudged", status="failed") == 1.0


def test_slack_429s_are_counted_by_method(harness: Harness) -> None:
    harness.slack.fail_next("chat.postMessage", times=2, retry_after=0)
    finish(harness, "run hello", "succeeded", set())
    outbox = Outbox(harness.bot.orch.engine)
    until(lambda: outbox.backlog()[0] == 0, what="the outbox to drain past the 429s")
    m = scrape(harness)
    assert value(m, "opsloop_slack_rate_limited_total", method="chat.postMessage") == 2
    sent = len(harness.slack.calls("chat.postMessage", ok=True))
    assert sent and value(m, "opsloop_slack_api_calls_total", method="chat.postMessage",
                          outcome="ok") == sent  # fmt: skip


def test_build_info_names_this_release(harness: Harness) -> None:
    (labels,) = [dict(k) for name, k in scrape(harness) if name == "opsloop_build_info"]
    assert labels == {"version": version("opsloop"), "python": platform.python_version()}


def test_readyz_is_200_with_every_check_ok_and_healthz_stays_alive(harness: Harness) -> None:
    status, body = get(harness, "/readyz")
    assert status == 200, body
    assert json.loads(body) == {"ready": True, "failing": [], "checks": {
        "database": "ok", "slack": "ok", "timers": "ok", "schedules": "ok"}}  # fmt: skip
    harness.bot.orch.close()  # the timers stop: not ready, still alive
    status, body = get(harness, "/readyz")
    assert status == 503 and json.loads(body)["failing"] == ["schedules", "timers"]
    assert get(harness, "/healthz")[0] == 200


def test_readyz_names_a_database_behind_this_release(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    setup(engine, revision="0006")
    with SlackDouble() as slack:
        ready = Readiness(engine, web_client(slack.token, slack.api_url),
                          lambda: {"timers": True})  # fmt: skip
        ready.check_token()
        status, _, body = ready.endpoint()
    assert status == 503
    answer = json.loads(body)
    assert answer["failing"] == ["database"]
    assert answer["checks"]["database"].startswith("schema is at 0006")
    engine.dispose()


def test_a_refused_token_is_a_settings_error_and_readyz_says_so(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.db'}")
    setup(engine)
    with SlackDouble() as slack:
        ready = Readiness(engine, web_client("xoxb-wrong", slack.api_url), dict)
        with pytest.raises(SettingsError, match="invalid_auth"):
            ready.check_token()
        assert ready.checks()["slack"] == "Slack refused the bot token (invalid_auth)"
    engine.dispose()


HOURLY = """
name: hourly
schedules:
  - cron: "0 * * * *"
    catchup: 1h
steps:
  - id: work
    shell: ["true"]
"""


def test_a_catch_up_is_a_late_start_in_the_due_to_started_histogram(engine: sa.Engine) -> None:
    clock, metrics = FakeClock(datetime(2030, 1, 7, 9, 10, tzinfo=UTC)), Metrics()
    observed = ObservedFrontEnd(SilentFrontEnd(), metrics, clock.now, {})
    with running(engine, HOURLY, clock=clock, front_end=observed, recover=True):
        clock.advance(timedelta(minutes=50))  # 10:00 fires on time
        until(
            lambda: [r.status for r in recent_runs(engine, 10)] == ["succeeded"],
            what="the 10:00 run to end",
        )  # else the next fire skips (overlap: skip)
        clock.advance(timedelta(hours=1, minutes=40))  # 11:00 was due 40 min ago: caught up
        until(lambda: len(recent_runs(engine, 10)) == 2, what="the 11:00 run")
    m = parsed(metrics.exposition())
    name = "opsloop_schedule_start_delay_seconds"
    assert value(m, f"{name}_count", workflow="hourly") == 2
    assert value(m, f"{name}_sum", workflow="hourly") == 40 * 60
    assert value(m, f"{name}_bucket", workflow="hourly", le="0.01") == 1  # 10:00, on time
    assert value(m, f"{name}_bucket", workflow="hourly", le="900.0") == 1
    assert value(m, f"{name}_bucket", workflow="hourly", le="3600.0") == 2  # 11:00, 40 min late
    fires = collected(engine, clock.now)
    assert value(fires, "opsloop_schedule_fires_total", workflow="hourly", outcome="started") == 2


def replicas_alive(engine: sa.Engine, clock: FakeClock) -> float:
    return value(collected(engine, clock.now), "opsloop_replicas_alive")


def test_replicas_alive_counts_the_processes_that_swept_lately(engine: sa.Engine) -> None:
    clock = FakeClock(datetime(2030, 1, 7, 9, 0, tzinfo=UTC))
    assert replicas_alive(engine, clock) == 0
    with running(engine, HELLO, clock=clock, recover=True) as first:
        with running(engine, HELLO, clock=clock, recover=True):
            assert replicas_alive(engine, clock) == 2
            with running(engine, HELLO, clock=clock):  # a CLI command is not a replica
                assert replicas_alive(engine, clock) == 2
        assert replicas_alive(engine, clock) == 1  # the second closed
        with running(engine, HELLO, clock=clock, recover=True):
            clock.advance(61)  # past ALIVE: only a replica that swept since counts
            first.sweep()
            assert replicas_alive(engine, clock) == 1  # the third stopped sweeping: gone
    assert replicas_alive(engine, clock) == 0


def test_every_metric_is_in_the_operations_guide(engine: sa.Engine) -> None:
    guide = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    collector = DatabaseCollector(engine, lambda: datetime.now(UTC), lambda: (0, 0.0))
    families = [*Metrics().registry.collect(), *collector.collect()]
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert len(names) > 20
    assert [n for n in sorted(names) if f"| `{n}` |" not in guide] == []


def test_metrics_port_0_takes_a_free_port_and_logs_which(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"OPSLOOP_METRICS_PORT": "0"})
    assert settings.metrics_port == 0  # refused before: "must be a port number (1-65535)"
    for wrong in ("-1", "65536", "http"):
        with pytest.raises(SettingsError, match="0 for any free port"):
            Settings.from_env({"OPSLOOP_METRICS_PORT": wrong})
    with (
        caplog.at_level(logging.INFO, logger="bot.metrics"),
        Metrics().served("127.0.0.1", settings.metrics_port),
    ):
        port = metrics_port_logged(caplog.text)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            assert b"# TYPE opsloop_runs_started_total counter" in r.read()


def metrics_port_logged(text: str) -> int:
    [port] = re.findall(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
    assert int(port) != 0
    return int(port)
