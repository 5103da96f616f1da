"""How the scheduler records, claims and reports steps (orchestrator/scheduler.py)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import engine_tasks
import sqlalchemy as sa

from orchestrator.engine import Orchestrator
from orchestrator.protocol import RunView, SilentFrontEnd, StepView
from orchestrator.workflow.loader import parse_workflow
from tests.polling import until

TWO_HELD = """
name: two
params:
  key: {type: string, required: true}
steps:
  - id: first
    python: engine_tasks:held
  - id: second
    python: engine_tasks:held
"""


def wide(n: int) -> str:
    """`n` independent steps and one that needs them all."""
    lines = ["name: wide", "steps:"]
    for i in range(n):
        lines += [f"  - id: s{i}", "    python: engine_tasks:ok"]
    needs = ", ".join(f"s{i}" for i in range(n))
    lines += ["  - id: join", f"    needs: [{needs}]", "    python: engine_tasks:ok"]
    return "\n".join(lines) + "\n"


class Recording(SilentFrontEnd):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.steps: Counter[tuple[str, str]] = Counter()
        self.finished: list[RunView] = []

    def step_changed(self, run: RunView, step: StepView) -> None:
        with self.lock:
            self.steps[(step.step_id, step.status)] += 1

    def run_finished(self, run: RunView) -> None:
        with self.lock:
            self.finished.append(run)


class Raising(SilentFrontEnd):
    def step_changed(self, run: RunView, step: StepView) -> None:
        raise RuntimeError("the chat service is down")

    def run_finished(self, run: RunView) -> None:
        raise RuntimeError("the chat service is down")


def test_a_step_waiting_for_a_worker_stays_pending_and_is_timed_from_its_start(
    engine: sa.Engine,
) -> None:
    key = uuid.uuid4().hex
    gate = engine_tasks.GATES[key] = threading.Event()
    orch = Orchestrator(engine, {"two": parse_workflow(TWO_HELD)}, max_workers=1)
    orch.start(recover=False)
    try:
        run_id = orch.start_run("two", {"key": key}, started_by="U0OPS")
        until(lambda: engine_tasks.CALLS.get(key) == 1, what="the first step to start")
        statuses = sorted(s.status for s in orch.view(run_id).steps)
        assert statuses == ["pending", "running"]  # the queued one is not marked running
        gate.set()
        run = orch.wait(run_id, 30)
        assert run.status == "succeeded"
        first, second = sorted(run.steps, key=lambda s: s.started_at)
        assert first.finished_at is not None and second.started_at is not None
        assert second.started_at >= first.finished_at  # its time excludes the queue
    finally:
        gate.set()
        orch.close()


def test_steps_finishing_together_are_each_recorded_and_reported_once(engine: sa.Engine) -> None:
    front = Recording()
    orch = Orchestrator(engine, {"wide": parse_workflow(wide(40))}, front_end=front,
                        max_workers=8)  # fmt: skip
    orch.start(recover=False)
    try:
        run_id = orch.start_run("wide", {}, started_by="U0OPS")
        until(lambda: front.finished, what="the run to finish")
    finally:
        orch.close()
    (finished,) = front.finished
    assert finished.id == run_id and finished.status == "succeeded"
    assert {s.status for s in finished.steps} == {"succeeded"}
    assert set(front.steps.values()) == {1}  # one report per change
    assert len(front.steps) == 2 * 41  # each step: running, then succeeded
    assert orch.view(run_id).steps == finished.steps  # what was reported is what is stored


def test_a_front_end_that_raises_does_not_stop_the_run(engine: sa.Engine) -> None:
    orch = Orchestrator(engine, {"wide": parse_workflow(wide(3))}, front_end=Raising())
    orch.start(recover=False)
    try:
        run_id = orch.start_run("wide", {}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "succeeded"
    finally:
        orch.close()


FLAKY = """
name: flaky
params:
  key: {type: string, required: true}
  succeed_on: {type: int, required: true}
steps:
  - id: shaky
    python: engine_tasks:flaky
    retry: {attempts: 3, backoff: 0s}
  - id: once
    needs: [shaky]
    python: engine_tasks:ok
"""


def test_a_failing_step_is_tried_again_as_its_retry_policy_says(engine: sa.Engine) -> None:
    orch = Orchestrator(engine, {"flaky": parse_workflow(FLAKY)})
    orch.start(recover=False)
    try:
        ok_key, bad_key = uuid.uuid4().hex, uuid.uuid4().hex
        ok = orch.wait(orch.start_run("flaky", {"key": ok_key, "succeed_on": 3},
                                      started_by="U0OPS"), 30)  # fmt: skip
        bad = orch.wait(orch.start_run("flaky", {"key": bad_key, "succeed_on": 4},
                                       started_by="U0OPS"), 30)  # fmt: skip
    finally:
        orch.close()
    shaky = next(s for s in ok.steps if s.step_id == "shaky")
    assert (ok.status, shaky.status, shaky.attempts) == ("succeeded", "succeeded", 3)
    assert engine_tasks.CALLS[ok_key] == 3
    shaky = next(s for s in bad.steps if s.step_id == "shaky")
    assert (bad.status, shaky.status, shaky.attempts) == ("failed", "failed", 3)
    assert engine_tasks.CALLS[bad_key] == 3 and "flaky failure 3" in (shaky.error or "")
