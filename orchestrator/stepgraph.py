"""Each step that may pause runs as its own one-node LangGraph graph, checkpointed by
SQLModelSaver (steps that cannot pause run without one: `stepwork.can_pause`).

The node calls the step's work; a gate (or a task that asks a person) calls
`interrupt()`, which saves the pending question in the step's thread and ends
the invocation. An answer resumes the same thread with `Command(resume=answer)`
(one interrupt is pending at a time, so by value rather than by interrupt id):
LangGraph re-runs the node, and `interrupt()` returns the answer. A gate is not
resumed that way: its node would only turn the answer into outputs, so the answer's
transaction writes the checkpoint that resume would have written (`finish`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Interrupt
from sqlalchemy.engine import Connection

from storage.checkpointer import Head, SQLModelSaver

NODE, OUTPUTS = "step", "outputs"
TRIGGER = f"branch:to:{NODE}"  # the channel that makes the node run
INTERRUPT = "__interrupt__"


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
        graph.add_node(NODE, _node)
        graph.add_edge(START, NODE)
        self.saver = saver
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

    def finish(
        self, conn: Connection, thread_id: str, outputs: dict[str, Any], head: Head | None = None
    ) -> bool:
        """Record, in the caller's transaction, that the step's node returned `outputs` after
        its interrupt: the checkpoint LangGraph's resume writes when the node ends (the
        node ran once more and wrote `outputs`), built without running the graph. False
        if the thread has no checkpoint (nothing to follow).

        For a gate this is the whole resume: after `interrupt()` returns the answer, its
        node only turns it into outputs (`gates.step_outputs`). LangGraph's own resume
        costs three reads, its loop on two threads and two writes in autocommit; this is
        at most one read and one write, which commit with the step's row, so the thread
        says finished exactly when the step does (recovery reads it for running steps).
        tests/test_gate_finish.py holds it to what LangGraph's resume writes. `head`: the
        thread's newest checkpoint if the caller read it already (it never changes while
        the step waits)."""
        if head is None or head[0]["configurable"]["thread_id"] != thread_id:
            head = self.saver.head(conn, thread_id)
        if head is None:
            return False
        self.saver.put_row(conn, self.finished_row(outputs, head))
        return True

    def finished_row(self, outputs: dict[str, Any], head: Head) -> dict[str, Any]:
        """The checkpoint row `finish` writes after `head` (a thread paused at its
        interrupt), for a caller that writes it with its own statement (gate_writes.py)."""
        config, parent, metadata = head
        step = int(metadata.get("step", -1)) + 1
        checkpoint, new_versions = _after_node(parent, outputs, step, self.saver.get_next_version)
        return self.saver.last_row(config, checkpoint, {"source": "loop", "step": step,
                                                        "parents": {}}, new_versions)  # fmt: skip

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


def _after_node(
    parent: Checkpoint, outputs: dict[str, Any], step: int, next_version: Callable[[Any], Any]
) -> tuple[Checkpoint, dict[str, Any]]:
    """The checkpoint after `parent` (paused at the node's interrupt) once the node wrote
    `outputs`, as LangGraph's loop builds it: the node's trigger consumed, `outputs`
    written (both at a new version), the versions the node and the interrupt saw."""
    versions = dict(parent["channel_versions"])
    version = next_version(max(versions.values()) if versions else None)
    seen = {node: dict(channels) for node, channels in parent["versions_seen"].items()}
    seen[INTERRUPT] = dict(versions)
    seen[NODE] = {TRIGGER: versions[TRIGGER]}
    new_versions = {OUTPUTS: version, TRIGGER: version}
    checkpoint: Checkpoint = {
        **parent,  # type: ignore[typeddict-item]
        "id": str(uuid6(clock_seq=step)),
        "ts": datetime.now(UTC).isoformat(),
        "channel_values": {OUTPUTS: outputs},
        "channel_versions": {**versions, **new_versions},
        "versions_seen": seen,
        "updated_channels": [OUTPUTS],
    }
    return checkpoint, new_versions
