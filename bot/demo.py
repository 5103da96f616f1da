"""`opsloop demo`: the smallest real thing opsloop does end to end.

Three checks run in parallel, an approval gate pauses the graph, the process
"restarts" (a new engine and saver on the same database), the gate is
answered and the deploy step runs. Every state change goes through
`SQLModelSaver` into the database.
"""

from __future__ import annotations

import operator
import time
import uuid
from typing import Annotated, TypedDict

import sqlalchemy as sa
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from storage.checkpointer import SQLModelSaver


class DemoState(TypedDict):
    service: str
    checks: Annotated[list[str], operator.add]
    approved_by: str
    deployed: bool


def _check(name: str):
    def run(state: DemoState) -> dict:
        time.sleep(0.1)  # stands in for real I/O, so the parallelism shows
        return {"checks": [name]}

    return run


def _graph() -> StateGraph:
    graph = StateGraph(DemoState)
    for name in ("lint", "unit", "security"):
        graph.add_node(name, _check(name))
        graph.add_edge(START, name)
    graph.add_node("approve", lambda s: {"approved_by": interrupt(f"deploy {s['service']}?")})
    graph.add_node("deploy", lambda s: {"deployed": True})
    graph.add_edge(["lint", "unit", "security"], "approve")
    graph.add_edge("approve", "deploy")
    return graph


def run_demo(url: str) -> int:
    """Run the demo against `url`; print what happened and what was stored."""
    config = {"configurable": {"thread_id": f"demo-{uuid.uuid4().hex[:8]}"}}
    saver = SQLModelSaver.from_url(url)
    saver.setup()
    print(f"database: {saver.engine.url.render_as_string()}")
    started = time.perf_counter()
    paused = (
        _graph()
        .compile(checkpointer=saver)
        .invoke({"service": "api", "checks": [], "deployed": False}, config)
    )
    took = time.perf_counter() - started
    print(f"checks {', '.join(sorted(paused['checks']))} ran in parallel: {took:.2f} s")
    print(f"paused at the gate: {paused['__interrupt__'][0].value!r}; state saved")
    saver.engine.dispose()

    restarted = SQLModelSaver.from_url(url)
    app = _graph().compile(checkpointer=restarted)
    (gate,) = app.get_state(config).interrupts
    done = app.invoke(Command(resume={gate.id: "demo-operator"}), config)
    print(f"reopened the database, approved by {done['approved_by']}, deployed={done['deployed']}")
    with restarted.engine.connect() as conn:
        counts = {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE thread_id = :t"),
                {"t": config["configurable"]["thread_id"]},
            ).scalar()
            for table in ("checkpoint", "checkpoint_blob", "checkpoint_write")
        }
    print("stored: " + ", ".join(f"{n} {t} rows" for t, n in counts.items()))
    restarted.engine.dispose()
    return 0 if done["deployed"] else 1
