"""Ready steps start longest remaining chain first when slots are scarce
(orchestrator/workflow/critical_path.py, Workflow.start_order, RunState.readiness)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from orchestrator.engine import Orchestrator
from orchestrator.protocol import RunView, SilentFrontEnd, StepView
from orchestrator.workflow.critical_path import path_lengths
from orchestrator.workflow.loader import parse_workflow

SCARCE = (
    """
name: scarce
max_parallel: 2
steps:
"""
    + "".join(f"  - id: s{i}\n    python: engine_tasks:ok\n" for i in range(6))
    + """
  - id: c0
    python: engine_tasks:ok
  - id: c1
    needs: [c0]
    python: engine_tasks:ok
  - id: c2
    needs: [c1]
    python: engine_tasks:ok
"""
)


class StartOrder(SilentFrontEnd):
    """Remembers the order steps were seen running in."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []

    def step_changed(self, run: RunView, step: StepView) -> None:
        with self.lock:
            if step.status == "running" and step.step_id not in self.started:
                self.started.append(step.step_id)


def test_path_lengths_count_the_steps_ahead_including_itself() -> None:
    lengths = path_lengths({s.id: s.needs for s in parse_workflow(SCARCE).steps})
    assert lengths["c0"] == 3 and lengths["c1"] == 2 and lengths["c2"] == 1
    assert all(lengths[f"s{i}"] == 1 for i in range(6))


def test_path_lengths_walk_a_long_chain_without_recursion() -> None:
    graph = {f"n{i}": (f"n{i - 1}",) if i else () for i in range(5000)}
    assert path_lengths(graph)["n0"] == 5000


def test_start_order_puts_the_longest_chain_first_then_file_order() -> None:
    order = [s.id for s in parse_workflow(SCARCE).start_order]
    assert order == ["c0", "c1", *(f"s{i}" for i in range(6)), "c2"]


def test_when_slots_are_scarce_the_longest_chain_starts_first(engine: sa.Engine) -> None:
    front = StartOrder()
    orch = Orchestrator(engine, {"scarce": parse_workflow(SCARCE)}, front_end=front)
    orch.start(recover=False)
    try:
        run = orch.wait(orch.start_run("scarce", {}, started_by="U0OPS"), 30)
    finally:
        orch.close()
    assert run.status == "succeeded"
    # In file order, s0 and s1 would take both slots and c0 would wait for them.
    assert "c0" in front.started[:2], front.started
