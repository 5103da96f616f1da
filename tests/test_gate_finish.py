"""A gate finished by its answer: the checkpoint written without running LangGraph is the
one LangGraph's resume writes, and it commits (or not) with the answer's transaction.

Real LangGraph, real checkpointer, on SQLite and PostgreSQL: one thread is resumed by
LangGraph (`Command(resume=...)`), its twin is finished by `StepGraph.finish`; both
must read back the same way, through LangGraph's own `get_state`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from langgraph.types import interrupt

from orchestrator.retrying_saver import RetryingSaver
from orchestrator.stepgraph import StepGraph
from storage.engine import write_transaction

OUTPUTS = {"approved": True, "approved_by": ["U0BOSS"]}


def _gate() -> dict[str, Any]:
    answer = interrupt({"interaction_id": "q"})
    return {"approved": True, "approved_by": [answer["by"]]}


def _paused(graph: StepGraph, thread_id: str) -> None:
    graph.saver.new_thread(thread_id)
    assert graph.run(thread_id, _gate).interrupt is not None
    assert graph.inspect(thread_id)[0] == "interrupted"


def _shape(value: Any) -> Any:
    """A checkpoint's structure: its keys all the way down, no versions, ids or times."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_a_finished_gate_reads_back_as_langgraphs_own_resume_left_it(engine: sa.Engine) -> None:
    graph = StepGraph(RetryingSaver(engine))
    _paused(graph, "resumed")
    _paused(graph, "finished")
    assert graph.run("resumed", _gate, {"by": "U0BOSS"}).outputs == OUTPUTS
    with write_transaction(engine) as conn:
        assert graph.finish(conn, "finished", OUTPUTS)
    assert graph.inspect("finished") == ("finished", OUTPUTS) == graph.inspect("resumed")
    theirs, ours = (graph.saver.get_tuple({"configurable": {"thread_id": t}})
                    for t in ("resumed", "finished"))  # fmt: skip
    assert theirs is not None and ours is not None
    assert _shape(ours.checkpoint) == _shape(theirs.checkpoint)
    assert ours.checkpoint["channel_values"] == theirs.checkpoint["channel_values"]
    assert ours.metadata == theirs.metadata
    assert ours.pending_writes == theirs.pending_writes == []
    assert ours.parent_config is not None  # it follows the paused checkpoint
    # LangGraph itself sees nothing left to run, and no interrupt.
    for thread_id in ("resumed", "finished"):
        state = graph.app.get_state({"configurable": {"thread_id": thread_id}})
        assert (state.next, state.interrupts, state.tasks) == ((), (), ())


def test_a_finished_gate_rolled_back_leaves_its_thread_paused(engine: sa.Engine) -> None:
    """The checkpoint is written in the caller's transaction: an answer that does not
    commit leaves the thread at its interrupt, as the step stays waiting."""
    graph = StepGraph(RetryingSaver(engine))
    _paused(graph, "rolled-back")

    class Abort(Exception):
        pass

    try:
        with write_transaction(engine) as conn:
            assert graph.finish(conn, "rolled-back", OUTPUTS)
            raise Abort
    except Abort:
        pass
    assert graph.inspect("rolled-back")[0] == "interrupted"
    with write_transaction(engine) as conn:
        assert not graph.finish(conn, "never-ran", OUTPUTS)
