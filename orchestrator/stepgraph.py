"""Each step that may pause runs as its own one-node LangGraph graph, checkpointed by
SQLModelSaver (steps that cannot pause run without one: `stepwork.can_pause`).

The node calls the step's work; a gate (or a task that asks a person) calls
`interrupt()`, which saves the pending question in the step's thread and ends
the invocation. An answer resumes the same thread with `Command(resume=answer)`
(one interrupt is pending at a time, so by value rather than by interrupt id):
LangGraph re-runs the node, and `interrupt()` returns the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Interrupt

from storage.checkpointer import SQLModelSaver


class StepState(TypedDict, total=False):
    outputs: dict[str, Any] | None


@dataclass(frozen=True)
class StepResult:
    outputs: dict[str, Any] | None
    interrupt: Interrupt | None


def _node(state: StepState, config: RunnableConfig) -> StepState:
    work: Callable[[], dict[str, Any]] = config["configurable"]["opsloop_work"]
    return {"outputs": work()}


class StepGraph:
    """One compiled graph shared by every step; the work comes in through the config."""

    def __init__(self, saver: SQLModelSaver) -> None:
        graph = StateGraph(StepState)
        graph.add_node("step", _node)
        graph.add_edge(START, "step")
        self.app = graph.compile(checkpointer=saver)

    def run(
        self,
        thread_id: str,
        work: Callable[[], dict[str, Any]],
        resume: Mapping[str, Any] | None = None,
    ) -> StepResult:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, "opsloop_work": work}}
        payload: Any = Command(resume=dict(resume)) if resume else {"outputs": None}
        # "exit": one checkpoint when the invocation ends (finished or interrupted) instead
        # of one before and one after the node. A crash mid-step then leaves no checkpoint,
        # which recovery reads as "may have started", as a running step is (recovery.py).
        result = self.app.invoke(payload, config, durability="exit")
        pending = result.get("__interrupt__")
        if pending:
            return StepResult(None, pending[0])
        return StepResult(result.get("outputs") or {}, None)

    def inspect(self, thread_id: str) -> tuple[str, Any]:
        """Where a step's thread stands: ("new"|"interrupted"|"finished"|"unfinished", detail)."""
        state = self.app.get_state({"configurable": {"thread_id": thread_id}})
        if not state.created_at:
            return "new", None
        if state.interrupts:
            return "interrupted", state.interrupts[0]
        if not state.next and state.values.get("outputs") is not None:
            return "finished", state.values["outputs"]
        return "unfinished", None
