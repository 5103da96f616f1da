"""Traces with the `otel` extra: spans of a real run on a real database, read back from
the SDK's in-memory exporter; and no trace of opentelemetry without the endpoint."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

pytest.importorskip("opentelemetry.sdk")  # the dev extra installs it: CI runs these

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from bot.tracing import TracingFrontEnd, traced
from orchestrator.clock import FakeClock
from orchestrator.protocol import SilentFrontEnd
from orchestrator.queries import open_interactions
from orchestrator.runs import AUDIT
from orchestrator.workflow.loader import parse_workflow
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import GATED
from tests.test_operations import NUDGED

S = 1_000_000_000  # ns


@dataclass
class Traced:
    clock: FakeClock
    exporter: InMemorySpanExporter

    def front_end(self, *texts: str) -> TracingFrontEnd:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        flows = {w.name: w for w in map(parse_workflow, texts)}
        return TracingFrontEnd(SilentFrontEnd(), provider.get_tracer("test"), self.clock.now,
                               flows)  # fmt: skip

    def spans(self) -> dict[str, ReadableSpan]:
        return {s.name: s for s in self.exporter.get_finished_spans()}


@pytest.fixture
def tracing() -> Iterator[Traced]:
    yield Traced(FakeClock(datetime(2030, 1, 7, 9, 0, tzinfo=UTC)), InMemorySpanExporter())


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_run_is_a_span_with_a_child_per_step_and_per_gate_wait(
    engine: sa.Engine, tracing: Traced
) -> None:
    with running(engine, GATED, clock=tracing.clock, front_end=tracing.front_end(GATED)) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0ALICE")
        until(lambda: open_interactions(engine, run_id), what="the approval")
        tracing.clock.advance(120)  # two minutes to decide
        (gate,) = open_interactions(engine, run_id)
        orch.decide(gate.id, "U0BOSS", "approve")
        assert orch.wait(run_id, timeout=30).status == "succeeded"
        until(lambda: "run gated" in tracing.spans(), what="the run's span to end")
    spans = tracing.spans()
    assert set(spans) == {"run gated", "step build", "step approve", "step ship", "wait approval"}
    run = spans["run gated"]
    assert run.parent is None and run.attributes["opsloop.run_id"] == run_id
    assert run.attributes["opsloop.status"] == "succeeded"
    for name in ("step build", "step approve", "step ship"):
        assert parent_of(spans[name]) == run.context.span_id
        assert spans[name].context.trace_id == run.context.trace_id
    assert spans["step build"].attributes["opsloop.step_kind"] == "shell"
    wait = spans["wait approval"]
    assert parent_of(wait) == spans["step approve"].context.span_id  # the step that asked
    assert wait.end_time - wait.start_time == 120 * S  # ended at the decision, on the clock
    assert (wait.attributes["opsloop.outcome"], wait.attributes["opsloop.answered_by"]) == (
        "approved", "U0BOSS")  # fmt: skip
    assert spans["step ship"].start_time >= wait.end_time


def audited(engine: sa.Engine, action: str) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(AUDIT).where(AUDIT.c.action == action)
        return int(conn.execute(query).scalar() or 0)


def test_reminders_escalations_and_the_deadline_are_events_of_the_gate_wait(
    engine: sa.Engine, tracing: Traced
) -> None:
    clock = tracing.clock
    front_end = tracing.front_end(NUDGED)
    with running(engine, NUDGED, clock=clock, front_end=front_end, recover=True) as orch:
        run_id = orch.start_run("nudged", {}, started_by="U0ALICE")
        until(lambda: open_interactions(engine, run_id), what="the approval")
        clock.advance(10 * 60)
        until(lambda: audited(engine, "interaction.reminded") == 1, what="the reminder")
        clock.advance(15 * 60)
        until(lambda: audited(engine, "interaction.escalated") == 1, what="the escalation")
        clock.advance(35 * 60)
        until(lambda: "run nudged" in tracing.spans(), what="the deadline to end the run")
    spans = tracing.spans()
    wait = spans["wait approval"]
    events = [e.name for e in wait.events]
    assert events[0] == "reminder" and events[-1] == "deadline"
    # A reminder due with the deadline may be told just after the decision: not an event
    # then, and no new span (the leak this once made: a span nothing ended).
    assert "escalation" in events
    assert 1 <= events.count("reminder") <= audited(engine, "interaction.reminded")
    assert not front_end._gates
    assert wait.events[-1].attributes["opsloop.action"] == "reject"
    assert wait.end_time - wait.start_time == 3600 * S
    assert wait.attributes["opsloop.outcome"] == "deadline"
    assert spans["run nudged"].status.status_code == StatusCode.ERROR


def test_after_a_restart_the_database_is_enough_to_go_on_tracing(
    engine: sa.Engine, tracing: Traced
) -> None:
    with running(engine, GATED, clock=tracing.clock, front_end=tracing.front_end(GATED)) as orch:
        run_id = orch.start_run("gated", {"service": "web"}, started_by="U0ALICE")
        until(lambda: open_interactions(engine, run_id), what="the approval")
    # The first process stopped with its run's span open: nothing of it is exported.
    assert "run gated" not in tracing.spans()
    tracing.clock.advance(300)
    later = tracing.front_end(GATED)  # a new process, knowing only the database
    with running(engine, GATED, clock=tracing.clock, front_end=later, recover=True) as orch:
        (gate,) = open_interactions(engine, run_id)
        orch.decide(gate.id, "U0BOSS", "approve")
        assert orch.wait(run_id, timeout=30).status == "succeeded"
        until(lambda: "run gated" in tracing.spans(), what="the run's span to end")
    spans = tracing.spans()
    run, wait = spans["run gated"], spans["wait approval"]
    assert run.attributes["opsloop.resumed"] is True
    assert run.start_time == int(datetime(2030, 1, 7, 9, 0, tzinfo=UTC).timestamp()) * S
    assert wait.end_time - wait.start_time == 300 * S  # asked before the restart
    assert parent_of(spans["step ship"]) == run.context.span_id


def test_without_the_endpoint_there_is_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    front_end = SilentFrontEnd()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert traced(front_end, datetime.now, {}) is front_end  # the front end, unwrapped
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert isinstance(traced(front_end, datetime.now, {}), TracingFrontEnd)


def test_without_the_extra_serve_runs_untraced_and_says_why() -> None:
    # opentelemetry made unimportable, as in an install without opsloop[otel]
    code = ("import sys; sys.modules['opentelemetry'] = None\n"
            "import logging; logging.basicConfig(level=logging.INFO)\n"
            "from bot.slack import server; from bot import headless, tracing\n"
            "f = object(); assert tracing.traced(f, None, {}) is f\n"
            "import os; os.environ['OTEL_EXPORTER_OTLP_ENDPOINT'] = 'http://127.0.0.1:9'\n"
            "assert tracing.traced(f, None, {}) is f\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "opentelemetry is not installed: no traces (pip install 'opsloop[otel]')" in out.stderr
