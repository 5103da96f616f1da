"""Prometheus metrics for `opsloop serve`, at GET /metrics on the bot's port.

Two sources, so replicas agree and a restart loses nothing that matters:
- gauges (runs active, questions waiting, outbox backlog, fires missed) are read from
  the database at scrape time by `DatabaseCollector` (orchestrator/stats.py);
- counters and histograms of what happened (runs and steps finishing, how long people
  took to decide, reminders, Slack calls) are fed by `ObservedFrontEnd`, which sees
  every event the runtime tells the front end, and by the Slack client (bot/slack/metered.py).

No run, step or user id is ever a label: workflow, step kind, status and outcome only.
docs/operations.md lists every metric.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.settings import SettingsError
from orchestrator import leases, stats, storage_retry
from orchestrator.protocol import FrontEnd, InteractionView, RunView, StepView
from orchestrator.workflow.definitions import Workflow
from storage.statuses import FINISHED_RUN, FINISHED_STEP, InteractionStatus, StepStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "opsloop"
# Steps take seconds to an hour; people take minutes to days.
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
# Waiting for a worker or a fire: milliseconds when all is well, minutes when not.
DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600)
DECISION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600)

log = logging.getLogger(__name__)


class Metrics:
    """The registry and the event metrics; `exposition()` is what /metrics answers."""

    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self.runs_started = Counter(f"{PREFIX}_runs_started_total", "Runs started",
                                    ["workflow"], registry=reg)  # fmt: skip
        self.runs_finished = Counter(f"{PREFIX}_runs_finished_total", "Runs that ended",
                                     ["workflow", "status"], registry=reg)  # fmt: skip
        self.run_seconds = Histogram(f"{PREFIX}_run_duration_seconds",
                                     "From a run's first step starting to the run ending",
                                     ["workflow"], buckets=RUN_BUCKETS, registry=reg)  # fmt: skip
        self.steps_finished = Counter(f"{PREFIX}_steps_finished_total", "Steps that ended",
                                      ["kind", "status"], registry=reg)  # fmt: skip
        self.step_seconds = Histogram(f"{PREFIX}_step_duration_seconds",
                                      "Step run time, start to end", ["kind", "status"],
                                      buckets=STEP_BUCKETS, registry=reg)  # fmt: skip
        self.ready_delay = Histogram(
            f"{PREFIX}_step_ready_delay_seconds",
            "From a step becoming ready (its needs ended, or its run started) to it starting",
            ["kind"], buckets=DELAY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.schedule_delay = Histogram(
            f"{PREFIX}_schedule_start_delay_seconds",
            "From a schedule's due time to its run starting (large after a catch-up)",
            ["workflow"], buckets=DELAY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.gates_opened = Counter(f"{PREFIX}_gates_opened_total", "Questions asked",
                                    ["workflow", "kind"], registry=reg)  # fmt: skip
        self.decision_seconds = Histogram(
            f"{PREFIX}_gate_decision_seconds", "From a question being asked to it closing",
            ["kind", "outcome"], buckets=DECISION_BUCKETS, registry=reg,
        )  # fmt: skip
        self.reminders = Counter(f"{PREFIX}_gate_reminders_total", "Reminders sent",
                                 ["workflow"], registry=reg)  # fmt: skip
        self.escalations = Counter(f"{PREFIX}_gate_escalations_total", "Escalations sent",
                                   ["workflow"], registry=reg)  # fmt: skip
        self.deadlines = Counter(f"{PREFIX}_gate_deadline_actions_total",
                                 "Questions closed by their deadline", ["workflow", "action"],
                                 registry=reg)  # fmt: skip
        self.slack_calls = Counter(f"{PREFIX}_slack_api_calls_total", "Slack Web API calls",
                                   ["method", "outcome"], registry=reg)  # fmt: skip
        self.slack_429 = Counter(f"{PREFIX}_slack_rate_limited_total",
                                 "Slack answers of HTTP 429 (each retried after Retry-After)",
                                 ["method"], registry=reg)  # fmt: skip

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    @contextmanager
    def served(self, host: str, port: int | None) -> Iterator[None]:
        """/metrics on a port of its own while inside (OPSLOOP_METRICS_PORT; None: not; 0:
        any free port), saying where; SettingsError if the port is taken."""
        if port is None:
            yield
            return
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise SettingsError(
                f"OPSLOOP_METRICS_PORT: port {port} on {host} cannot be used ({exc.strerror}); "
                "choose a free one"
            ) from None
        log.info("metrics on http://%s:%s/metrics", host, server.server_port)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


class ObservedFrontEnd:
    """A front end that counts what it is told, then tells `inner`.

    Step views carry no kind (step rows do not store it): it is looked up in
    `workflows`, the definitions loaded at start ("unknown" for a step no longer there).
    """

    def __init__(
        self, inner: FrontEnd, metrics: Metrics, now: Callable[[], datetime],
        workflows: Mapping[str, Workflow],
    ) -> None:  # fmt: skip
        self._inner, self._m, self._now = inner, metrics, now
        self._kinds = {(wf.name, s.id): str(s.kind) for wf in workflows.values() for s in wf.steps}
        self._needs = {(wf.name, s.id): s.needs for wf in workflows.values() for s in wf.steps}
        self._positions: dict[tuple[str, str], int] = {}  # (workflow, step) -> in run.steps
        self._finished: OrderedDict[str, None] = OrderedDict()  # runs already counted
        # Per run, the steps whose start was counted: a step is told running again as its
        # attempts go on or it resumes, and a retried step (kept after its run ends: a
        # failed run may be retried) was ready long before.
        self._started: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def run_started(self, run: RunView) -> None:
        self._m.runs_started.labels(run.workflow).inc()
        self._inner.run_started(run)

    def step_changed(self, run: RunView, step: StepView) -> None:
        kind = step.kind or self._kinds.get((run.workflow, step.step_id), "unknown")
        if step.status == StepStatus.RUNNING and step.started_at is not None:
            ready = self._ready_at(run, step.step_id)
            if ready is not None and self._first_start(run.id, step.step_id):
                delay = (step.started_at - ready).total_seconds()
                self._m.ready_delay.labels(kind).observe(max(0.0, delay))
        if step.status in FINISHED_STEP:
            self._m.steps_finished.labels(kind, step.status).inc()
            if step.duration_s is not None:
                self._m.step_seconds.labels(kind, step.status).observe(step.duration_s)
        self._inner.step_changed(run, step)

    def _ready_at(self, run: RunView, step_id: str) -> datetime | None:
        """When the step could have started: its run's start or its needs' last end (None
        for a step not in the definitions loaded at start)."""
        needs = self._needs.get((run.workflow, step_id))
        if needs is None or run.created_at is None:
            return None
        ready = run.created_at
        for need in needs:
            step = self._step(run, need)
            if step is None or step.finished_at is None:
                return None
            ready = max(ready, step.finished_at)
        return ready

    def _step(self, run: RunView, step_id: str) -> StepView | None:
        """A step of the run by its position, learnt once per workflow: a scan of every
        step per started step would make a wide run's bookkeeping quadratic."""
        at = self._positions.get((run.workflow, step_id))
        if at is None or at >= len(run.steps) or run.steps[at].step_id != step_id:
            at = next((i for i, s in enumerate(run.steps) if s.step_id == step_id), None)
            if at is None:  # a run of an older version of the workflow
                return None
            self._positions[(run.workflow, step_id)] = at
        return run.steps[at]

    def _first_start(self, run_id: str, step_id: str) -> bool:
        with self._lock:
            steps = self._started.setdefault(run_id, set())
            if step_id in steps:
                return False
            steps.add(step_id)
            if len(self._started) > 10_000:
                self._started.popitem(last=False)
            return True

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        self._m.gates_opened.labels(run.workflow, interaction.kind).inc()
        self._inner.interaction_opened(run, interaction)

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        if interaction.status != InteractionStatus.PENDING:
            self._closed(run, interaction)
        self._inner.interaction_updated(run, interaction)

    def _closed(self, run: RunView, it: InteractionView) -> None:
        last = it.last_response
        outcome = "deadline" if last is not None and last.at_deadline else str(it.status)
        if outcome == "deadline":
            self._m.deadlines.labels(run.workflow, it.on_deadline or "fail").inc()
        if it.asked_at is not None:
            end = it.answered_at or self._now()
            self._m.decision_seconds.labels(it.kind, outcome).observe(
                max(0.0, (end - it.asked_at).total_seconds())
            )

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        self._m.reminders.labels(run.workflow).inc()
        self._inner.reminder(run, interaction)

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        self._m.escalations.labels(run.workflow).inc()
        self._inner.escalated(run, interaction)

    def run_finished(self, run: RunView) -> None:
        if run.status in FINISHED_RUN and self._first_finish(run.id):
            self._m.runs_finished.labels(run.workflow, run.status).inc()
            starts = [s.started_at for s in run.steps if s.started_at is not None]
            if starts:
                seconds = (self._now() - min(starts)).total_seconds()
                self._m.run_seconds.labels(run.workflow).observe(max(0.0, seconds))
        self._inner.run_finished(run)

    def _first_finish(self, run_id: str) -> bool:
        """A run is told finished once per path that ends it; count it once."""
        with self._lock:
            if run_id in self._finished:
                return False
            self._finished[run_id] = None
            if len(self._finished) > 10_000:
                self._finished.popitem(last=False)
            return True

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        self._inner.schedule_paused(schedule_id, channel, reason)

    def schedule_started(self, schedule_id: str, due: datetime, started_at: datetime) -> None:
        workflow = schedule_id.partition("/")[0]  # schedule ids are workflow/name
        delay = (started_at - due).total_seconds()
        self._m.schedule_delay.labels(workflow).observe(max(0.0, delay))
        told = getattr(self._inner, "schedule_started", None)
        if told is not None:
            told(schedule_id, due, started_at)

    def __getattr__(self, name: str) -> Any:
        """What the front end offers beyond the protocol passes through uncounted."""
        return getattr(self._inner, name)


class DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes, plus process counters."""

    def __init__(self, engine: Any, now: Callable[[], datetime],
                 outbox: Callable[[], tuple[int, float]]) -> None:  # fmt: skip
        self._engine, self._now, self._outbox = engine, now, outbox

    def collect(self) -> Iterator[Metric]:
        s = stats.snapshot(self._engine, self._now())
        yield _gauge("runs_active", "Runs not finished", ["workflow", "status"], s.runs_active)
        yield _gauge("gates_pending", "Questions waiting for a person", ["workflow", "kind"],
                     s.gates_pending)  # fmt: skip
        yield _gauge("gate_oldest_pending_seconds", "Age of the oldest waiting question",
                     ["workflow"], {(w,): v for w, v in s.oldest_gate_s.items()})  # fmt: skip
        yield _counter("schedule_fires", "Schedule fires by outcome", ["workflow", "outcome"],
                       {**s.schedule_fires, **{(w, "missed"): n for w, n in
                                               s.schedule_missed.items()}})  # fmt: skip
        backlog, oldest = self._outbox()
        yield _gauge("outbox_backlog", "Chat messages waiting to be sent", [], {(): backlog})
        yield _gauge("outbox_oldest_seconds", "Age of the oldest message waiting", [],
                     {(): oldest})  # fmt: skip
        yield _counter("storage_retries", "Database calls retried after a transient error",
                       [], {(): storage_retry.retries()})  # fmt: skip
        yield _counter("lease_takeovers", "Running steps taken over from a gone replica", [],
                       {(): leases.takeovers()})  # fmt: skip
        yield _gauge("replicas_alive", "Processes serving the database that swept within 60 s",
                     [], {(): s.replicas_alive})  # fmt: skip
        yield _gauge("build_info", "opsloop's version", ["version", "python"],
                     {(_version(), platform.python_version()): 1})  # fmt: skip


def _gauge(name: str, doc: str, labels: list[str], values: dict[Any, float]) -> Metric:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, float]) -> Metric:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _version() -> str:
    try:
        return version("opsloop")
    except PackageNotFoundError:
        return "unknown"
