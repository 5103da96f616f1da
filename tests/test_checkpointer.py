"""SQLModelSaver under real LangGraph graphs: parallel writers, restarts, storage layout."""

from __future__ import annotations

import operator
import threading
import uuid
from typing import Annotated, TypedDict

import sqlalchemy as sa
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from storage.checkpointer import SQLModelSaver


class FanState(TypedDict):
    results: Annotated[list[int], operator.add]


def _fan_out_graph(width: int, barrier: threading.Barrier) -> StateGraph:
    graph = StateGraph(FanState)

    def make(n: int):
        def node(state: FanState) -> dict:
            # Every node waits for all the others: proves they all run at once.
            barrier.wait(timeout=60)
            return {"results": [n]}

        return node

    for n in range(width):
        graph.add_node(f"n{n}", make(n))
        graph.add_edge(START, f"n{n}")
    return graph


def test_64_parallel_nodes_write_through_one_saver(db_url: str) -> None:
    saver = SQLModelSaver.from_url(db_url)
    saver.setup()
    app = _fan_out_graph(64, threading.Barrier(64)).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}, "max_concurrency": 64}
    result = app.invoke({"results": []}, config, durability="sync")
    assert sorted(result["results"]) == list(range(64))

    # A second process (here: a second engine) sees the same persisted state.
    reader = SQLModelSaver.from_url(db_url)
    state = app.with_config(checkpointer=reader).get_state(config)
    assert sorted(state.values["results"]) == list(range(64))
    with saver.engine.connect() as conn:
        writers = conn.execute(
            sa.text("SELECT count(DISTINCT task_id) FROM checkpoint_write WHERE thread_id = :t"),
            {"t": config["configurable"]["thread_id"]},
        ).scalar()
    assert writers >= 64
    saver.engine.dispose()
    reader.engine.dispose()


class GateState(TypedDict):
    before: int
    answer: str


def _gate_graph() -> StateGraph:
    graph = StateGraph(GateState)
    graph.add_node("prepare", lambda s: {"before": s["before"] + 1})
    graph.add_node("ask", lambda s: {"answer": interrupt({"question": "ship it?"})})
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "ask")
    return graph


def test_an_interrupted_graph_resumes_after_a_restart(db_url: str) -> None:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    first = SQLModelSaver.from_url(db_url)
    first.setup()
    paused = _gate_graph().compile(checkpointer=first).invoke({"before": 0}, config)
    assert paused["__interrupt__"][0].value == {"question": "ship it?"}
    first.engine.dispose()  # the "process" ends

    second = SQLModelSaver.from_url(db_url)
    app = _gate_graph().compile(checkpointer=second)
    (pending,) = app.get_state(config).interrupts
    done = app.invoke(Command(resume={pending.id: "yes"}), config)
    assert done == {"before": 1, "answer": "yes"}
    second.engine.dispose()


class BigState(TypedDict):
    big: str
    count: int


def test_unchanged_channels_are_not_stored_again(db_url: str) -> None:
    saver = SQLModelSaver.from_url(db_url)
    saver.setup()
    graph = StateGraph(BigState)
    graph.add_node("load", lambda s: {"big": "x" * 50_000})
    previous = "load"
    for n in range(10):
        graph.add_node(f"step{n}", lambda s: {"count": s["count"] + 1})
        graph.add_edge(previous, f"step{n}")
        previous = f"step{n}"
    graph.add_edge(START, "load")
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = graph.compile(checkpointer=saver).invoke({"big": "", "count": 0}, config)
    assert result["count"] == 10 and len(result["big"]) == 50_000

    with saver.engine.connect() as conn:
        checkpoints = conn.execute(sa.text("SELECT count(*) FROM checkpoint")).scalar()
        big_rows = conn.execute(
            sa.text("SELECT count(*) FROM checkpoint_blob WHERE channel = 'big'")
        ).scalar()
        largest = conn.execute(sa.text("SELECT max(length(checkpoint)) FROM checkpoint")).scalar()
    assert checkpoints >= 12
    assert big_rows == 1  # stored once, shared by every later checkpoint
    assert largest < 10_000  # no checkpoint row carries the big value
    saver.engine.dispose()


def test_metadata_is_json_and_values_are_typed_bytes(db_url: str) -> None:
    saver = SQLModelSaver.from_url(db_url)
    saver.setup()
    config = {"configurable": {"thread_id": str(uuid.uuid4())}, "metadata": {"team": "infra"}}
    _gate_graph().compile(checkpointer=saver).invoke({"before": 0}, config)
    extract = (
        "metadata ->> 'team'"
        if saver.engine.dialect.name == "postgresql"
        else "json_extract(metadata, '$.team')"
    )
    with saver.engine.connect() as conn:
        teams = conn.execute(sa.text(f"SELECT DISTINCT {extract} FROM checkpoint")).scalars().all()
        types = conn.execute(sa.text("SELECT DISTINCT type FROM checkpoint")).scalars().all()
    assert teams == ["infra"]
    assert types == ["msgpack"]
    found = list(saver.list(None, filter={"team": "infra", "source": "loop"}, limit=1))
    assert len(found) == 1 and found[0].metadata["team"] == "infra"
    assert list(saver.list(None, filter={"parents": {"nope": "x"}})) == []
    saver.engine.dispose()


def test_a_wide_join_with_a_long_channel_name_is_stored(db_url: str) -> None:
    # LangGraph names the channel of add_edge([...120 nodes...], "join") after every node.
    saver = SQLModelSaver.from_url(db_url)
    saver.setup()
    graph = StateGraph(FanState)
    names = [f"fan_{n}" for n in range(120)]
    for n, name in enumerate(names):
        graph.add_node(name, lambda s, n=n: {"results": [n]})
        graph.add_edge(START, name)
    graph.add_node("join", lambda s: {"results": [-1]})
    graph.add_edge(names, "join")
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = graph.compile(checkpointer=saver).invoke({"results": []}, config)
    assert len(result["results"]) == 121 and result["results"].count(-1) == 1
    saver.engine.dispose()
