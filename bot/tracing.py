"""OpenTelemetry traces of runs, for `serve` with the `opsloop[otel]` extra installed.

On only when OTEL_EXPORTER_OTLP_ENDPOINT is set and the extra is installed: then a
run is a span, each step and each gate wait a child of it (a question a step asks is
the child of that step), and reminders, escalations and deadlines are events on the
gate's span. Otherwise `traced()` returns the front end it was given and
opentelemetry is never imported: tracing costs nothing.

Spans are built from the events the runtime tells its front end (the same ones
metrics count), with the times stored in the database, not the time the event came.
A process keeps open spans in memory only: after a restart, the first event of a run
(or of a step or question) that was open starts a new span from the stored start
time, marked `opsloop.resumed`; the spans left open by a crashed process are never
exported. Traces of a run that outlives a process are split in two.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.protocol import FrontEnd, InteractionView, RunView, StepView
from orchestrator.workflow.definitions import Workflow
from storage.statuses import FINISHED_RUN, FINISHED_STEP, InteractionStatus, StepStatus

log = logging.getLogger(__name__)
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


def traced(front_end: Any, now: Callable[[], datetime], workflows: Mapping[str, Workflow]) -> Any:
    """`front_end`, traced if OTEL_EXPORTER_OTLP_ENDPOINT is set and the extra installed."""
    if not os.environ.get(ENDPOINT):
        return front_end
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("%s is set but opentelemetry is not installed: no traces "
                    "(pip install 'opsloop[otel]')", ENDPOINT)  # fmt: skip
        return front_end
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured; the exporter reads
    # the endpoint, headers and timeouts from the standard OTEL_EXPORTER_OTLP_* variables.
    provider = TracerProvider(resource=Resource.create({"service.name": "opsloop"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("tracing to %s", os.environ[ENDPOINT])
    return TracingFrontEnd(front_end, provider.get_tracer("opsloop"), now, workflows)


def _ns(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000_000)


class TracingFrontEnd:
    """A front end that turns what it is told into spans, then tells `inner`."""

    def __init__(
        self, inner: FrontEnd, tracer: Any, now: Callable[[], datetime],
        workflows: Mapping[str, Workflow],
    ) -> None:  # fmt: skip
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        self._inner, self._tracer, self._now = inner, tracer, now
        self._context_of, self._status = trace.set_span_in_context, (Status, StatusCode)
        self._kinds = {(wf.name, s.id): str(s.kind) for wf in workflows.values() for s in wf.steps}
        self._lock = threading.Lock()
        self._runs: dict[str, Any] = {}
        self._steps: dict[tuple[str, str], Any] = {}
        self._gates: dict[str, Any] = {}
        # Questions whose span ended: a reminder told just after the decision (their timers
        # race) must not open a new span that nothing would end.
        self._closed: OrderedDict[str, None] = OrderedDict()

    # -- spans ------------------------------------------------------------------

    def _late(self, run: RunView) -> bool:
        """An event about a run whose span has ended (it is told finished more than once,
        and a cancel tells its steps after): no new span for it."""
        with self._lock:
            return run.status in FINISHED_RUN and run.id not in self._runs

    def _run_span(self, run: RunView, *, resumed: bool = True) -> Any:
        with self._lock:
            span = self._runs.get(run.id)
            if span is None:
                span = self._runs[run.id] = self._tracer.start_span(
                    f"run {run.workflow}", start_time=_ns(run.created_at) or _ns(self._now()),
                    attributes={"opsloop.run_id": run.id, "opsloop.workflow": run.workflow,
                                "opsloop.started_by": run.started_by,
                                **({"opsloop.resumed": True} if resumed else {})},
                )  # fmt: skip
            return span

    def _step_span(self, run: RunView, step: StepView) -> Any:
        parent = self._run_span(run)
        key = (run.id, step.step_id)
        with self._lock:
            span = self._steps.get(key)
            if span is None:
                kind = step.kind or self._kinds.get((run.workflow, step.step_id), "unknown")
                span = self._steps[key] = self._tracer.start_span(
                    f"step {step.step_id}", context=self._context_of(parent),
                    start_time=_ns(step.started_at) or _ns(self._now()),
                    attributes={"opsloop.run_id": run.id, "opsloop.step_id": step.step_id,
                                "opsloop.step_kind": kind, "opsloop.attempts": step.attempts},
                )  # fmt: skip
            return span

    def _gate_event(self, run: RunView, it: InteractionView, name: str) -> None:
        with self._lock:
            closed = it.id in self._closed
        if not closed and not self._late(run):
            self._gate_span(run, it).add_event(name, timestamp=_ns(self._now()))

    def _gate_span(self, run: RunView, it: InteractionView) -> Any:
        with self._lock:
            span = self._gates.get(it.id)
            parent = self._steps.get((run.id, it.step_id))
        if span is not None:
            return span
        parent = parent or self._run_span(run)
        span = self._tracer.start_span(
            f"wait {it.kind}", context=self._context_of(parent),
            start_time=_ns(it.asked_at) or _ns(self._now()),
            attributes={"opsloop.run_id": run.id, "opsloop.step_id": it.step_id,
                        "opsloop.interaction_id": it.id, "opsloop.gate_kind": it.kind,
                        "opsloop.purpose": it.purpose},
        )  # fmt: skip
        with self._lock:
            return self._gates.setdefault(it.id, span)

    # -- what the runtime tells -------------------------------------------------

    def run_started(self, run: RunView) -> None:
        self._run_span(run, resumed=False)
        self._inner.run_started(run)

    def step_changed(self, run: RunView, step: StepView) -> None:
        started = step.status == StepStatus.RUNNING
        if (started or (step.status in FINISHED_STEP and step.started_at)) and not self._late(run):
            span = self._step_span(run, step)
            if step.status in FINISHED_STEP:
                with self._lock:
                    self._steps.pop((run.id, step.step_id), None)
                span.set_attribute("opsloop.status", step.status)
                span.set_attribute("opsloop.attempts", step.attempts)
                if step.status == StepStatus.FAILED:
                    span.set_status(self._status[0](self._status[1].ERROR, step.error or ""))
                span.end(end_time=_ns(step.finished_at) or _ns(self._now()))
        self._inner.step_changed(run, step)

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        if not self._late(run):
            self._gate_span(run, interaction)
        self._inner.interaction_opened(run, interaction)

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        it = interaction
        if it.status != InteractionStatus.PENDING and not self._late(run):
            span = self._gate_span(run, it)
            with self._lock:
                self._gates.pop(it.id, None)
                self._closed[it.id] = None
                if len(self._closed) > 10_000:
                    self._closed.popitem(last=False)
            last = it.last_response
            if last is not None and last.at_deadline:
                span.add_event("deadline", {"opsloop.action": it.on_deadline or "fail"},
                               timestamp=_ns(it.answered_at))  # fmt: skip
            span.set_attribute("opsloop.outcome", "deadline" if last is not None
                               and last.at_deadline else str(it.status))  # fmt: skip
            if it.answered_by:
                span.set_attribute("opsloop.answered_by", it.answered_by)
            span.end(end_time=_ns(it.answered_at) or _ns(self._now()))
        self._inner.interaction_updated(run, interaction)

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        self._gate_event(run, interaction, "reminder")
        self._inner.reminder(run, interaction)

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        self._gate_event(run, interaction, "escalation")
        self._inner.escalated(run, interaction)

    def run_finished(self, run: RunView) -> None:
        with self._lock:
            span = self._runs.pop(run.id, None)
            left = [k for k in self._steps if k[0] == run.id]
            steps = [self._steps.pop(k) for k in left]
        end = _ns(self._now())
        for step in steps:  # cancelled with the run
            step.set_attribute("opsloop.status", run.status)
            step.end(end_time=end)
        if span is not None:
            span.set_attribute("opsloop.status", run.status)
            if run.status == "failed":
                span.set_status(self._status[0](self._status[1].ERROR, run.error or ""))
            span.end(end_time=end)
        self._inner.run_finished(run)

    def schedule_started(self, schedule_id: str, due: datetime, started_at: datetime) -> None:
        told = getattr(self._inner, "schedule_started", None)
        if told is not None:
            told(schedule_id, due, started_at)

    def __getattr__(self, name: str) -> Any:
        """What the front end offers beyond these passes through untraced."""
        return getattr(self._inner, name)
