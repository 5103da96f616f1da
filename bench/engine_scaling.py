"""The `scaling` measurement of bench/engine.py: how one run's cost grows with its size.

Shapes, all no-op python steps (`engine_tasks:noop`), 16 workers, no `max_parallel`:
- fan-out of N independent steps, N in `--sizes` (default 1000,2000,10000);
- a chain of `--chain` steps (default 2000), each needing the one before.

Targets (issue 16): the fan-out of 2,000 takes at most 2.2x the fan-out of 1,000, the
largest fan-out finishes, and the cost per step stays within 1.5x of LangGraph's for
both shapes. LangGraph's figure is the same DAG as one StateGraph, one node per step
(no checkpointer, in memory, `max_concurrency=16`), measured in the same run.

A second, informative baseline (no target) compares like with like: the same DAG with
LangGraph's own durable checkpointer on the same kind of database (`SqliteSaver` on a
file in a temp dir, `PostgresSaver` in a fresh schema), `durability="sync"` (each
superstep's checkpoint is written before the next starts, as our claim is committed
before a step runs). Its state is a counter, not the growing dict of the in-memory
graph, so LangGraph does not pay for serialising an ever larger state.

A third row for the chain, informative: the floor of any engine that makes a step's
claim durable before the step runs, on this database and this machine: as many
one-row `UPDATE`s, each committed, as the chain has steps, through the same engine
settings (storage/engine.py), nothing else. Its ratio to LangGraph in memory says
how much of the 1.5x target is left for the scheduling itself.
One untimed warm-up run of the first shape, then `--repeat` rounds that time each shape in
turn (so every size sees the same database and the same load; 10,000 steps only once).
Each row also gives the process's CPU per step (all threads): on a loaded machine the
wall time is mostly waiting for a core, and CPU per step that stays flat as N grows is
what says the engine's own work is linear.
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph

DOUBLING_TARGET = 2.2
LANGGRAPH_TARGET = 1.5


def fanout_tasks(task: Callable[..., Any], n: int) -> list[Any]:
    return [task(f"f{i}", "noop") for i in range(n)]


def chain_tasks(task: Callable[..., Any], n: int) -> list[Any]:
    return [task(f"c{i}", "noop", (f"c{i - 1}",) if i else ()) for i in range(n)]


def langgraph_seconds(tasks: list[Any], node: Callable[[Any], Any], state: type, repeat: int,
                      workers: int) -> float:  # fmt: skip
    """Median wall seconds of the DAG as one in-memory StateGraph, one node per step."""
    builder = StateGraph(state)
    for t in tasks:
        builder.add_node(t.id, node(t))
        builder.add_edge(t.needs[0] if t.needs else START, t.id)
    graph = builder.compile()
    config = {"max_concurrency": workers, "recursion_limit": len(tasks) + 10}
    graph.invoke({"started": {}}, config)  # warm-up
    walls = []
    for _ in range(repeat):
        start = time.monotonic()
        out = graph.invoke({"started": {}}, config)
        walls.append(time.monotonic() - start)
        assert len(out["started"]) == len(tasks)
    return statistics.median(walls)


class CountState(TypedDict, total=False):
    done: Annotated[int, operator.add]


def _count(_state: CountState) -> CountState:
    return {"done": 1}


@contextlib.contextmanager
def durable_saver(kind: str) -> Iterator[Any]:
    """LangGraph's own checkpointer for `kind`, on a fresh file or schema."""
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        with tempfile.TemporaryDirectory(prefix="bench-lg-") as tmp:
            conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
            try:
                saver = SqliteSaver(conn)
                saver.setup()
                yield saver
            finally:
                conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver

    from bench._databases import PG_URL, pg_schema
    from storage.engine import create_engine

    admin = create_engine(PG_URL)
    try:
        with pg_schema(admin) as schema:
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            with PostgresSaver.from_conn_string(url) as saver:
                saver.setup()
                yield saver
    finally:
        admin.dispose()


def durable_langgraph_seconds(tasks: list[Any], kind: str, repeat: int, workers: int) -> float:
    """Median wall seconds of the DAG with LangGraph's durable checkpointer on `kind`."""
    builder = StateGraph(CountState)
    for t in tasks:
        builder.add_node(t.id, _count)
        builder.add_edge(t.needs[0] if t.needs else START, t.id)
    with durable_saver(kind) as saver:
        graph = builder.compile(checkpointer=saver)
        walls = []
        for i in range(repeat + 1):  # the first is a warm-up
            config = {"max_concurrency": workers, "recursion_limit": len(tasks) + 10,
                      "configurable": {"thread_id": uuid.uuid4().hex}}  # fmt: skip
            start = time.monotonic()
            out = graph.invoke({"done": 0}, config, durability="sync")
            if i:
                walls.append(time.monotonic() - start)
            assert out["done"] == len(tasks)
    return statistics.median(walls)


def commit_floor_seconds(kind: str, n: int, repeat: int) -> float:
    """Median wall seconds of `n` one-row UPDATEs, each its own commit, on a fresh
    database of `kind` opened as opsloop opens it."""
    from bench._databases import database_url
    from storage.engine import create_engine

    with database_url(kind, "bench-floor-") as url:
        engine = create_engine(url)
        try:
            raw = engine.raw_connection()
            cur = raw.cursor()
            cur.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            cur.execute("INSERT INTO floor VALUES (1, 0)")
            raw.commit()
            walls = []
            for _ in range(repeat):
                start = time.monotonic()
                for _ in range(n):
                    cur.execute("UPDATE floor SET v = v + 1 WHERE id = 1")
                    raw.commit()
                walls.append(time.monotonic() - start)
            raw.close()
        finally:
            engine.dispose()
    return statistics.median(walls)


def measure(bench: Any, kind: str, args: Any, prof: Any) -> list[Any]:
    """Rows for `kind`: one per fan-out size and one for the chain, with their ratios.

    `bench` is bench/engine.py's module (its Task, Result, workflow and run helpers)."""
    sizes, results, walls = args.sizes, [], {}
    shapes = [(f"fanout{n}", fanout_tasks(bench.Task, n)) for n in sizes]
    shapes.append((f"chain{args.chain}", chain_tasks(bench.Task, args.chain)))
    texts = [bench.workflow_yaml(name, tasks) for name, tasks in shapes]
    samples: dict[str, list[float]] = {name: [] for name, _ in shapes}
    cpus: dict[str, list[float]] = {name: [] for name, _ in shapes}
    with bench.orchestrator(kind, texts, prof) as (orch, front):
        bench.timed_run(orch, front, shapes[0][0])  # warm-up
        for r in range(args.repeat):  # round-robin: each size sees the same database and load
            for name, tasks in shapes:
                if r == 0 or len(tasks) <= 5000:  # a 10,000-step run is timed once
                    cpu = time.process_time()
                    samples[name].append(bench.timed_run(orch, front, name)[0])
                    cpus[name].append(time.process_time() - cpu)
    for name, tasks in shapes:
        walls[name] = (statistics.median(samples[name]), samples[name], tasks)
    lang = {}
    for name, (_wall, _samples, tasks) in walls.items():
        if len(tasks) <= 5000:  # LangGraph's own figure for the shapes we compare
            lang[name] = langgraph_seconds(tasks, bench.node, bench.DagState, args.repeat,
                                           bench.WORKERS)  # fmt: skip
    durable = {}
    for name, (_wall, _samples, tasks) in walls.items():
        if len(tasks) <= 5000:
            durable[name] = durable_langgraph_seconds(tasks, kind, args.repeat, bench.WORKERS)
    saver = "SqliteSaver" if kind == "sqlite" else "PostgresSaver"
    for name, (wall, samples, tasks) in walls.items():
        base = lang.get(name)
        shape = "chain" if name.startswith("chain") else "fan-out"
        extra = {"per_step_ms": wall / len(tasks) * 1000,
                 "cpu_per_step_ms": statistics.median(cpus[name]) / len(tasks) * 1000}  # fmt: skip
        results.append(bench.Result(
            f"scaling: {shape} of {len(tasks)} no-op steps", kind, wall, "s",
            base, "LangGraph", LANGGRAPH_TARGET if base else None, samples, extra,
        ))  # fmt: skip
        if name in durable:
            results.append(bench.Result(
                f"scaling: {shape} of {len(tasks)} no-op steps", kind, wall, "s",
                durable[name], f"LangGraph+{saver} sync", None, samples, dict(extra),
            ))  # fmt: skip
    chain = f"chain{args.chain}"
    if chain in lang:
        floor = commit_floor_seconds(kind, args.chain, args.repeat)
        results.append(bench.Result(
            f"scaling: floor, {args.chain} one-row UPDATEs each committed", kind, floor, "s",
            lang[chain], "LangGraph chain", None, [floor],
            {"per_step_ms": floor / args.chain * 1000},
        ))  # fmt: skip
    small, big = (f"fanout{n}" for n in (1000, 2000))
    if small in walls and big in walls:
        ratio = walls[big][0] / walls[small][0]
        results.append(bench.Result(
            "scaling: fan-out 2,000 / fan-out 1,000", kind, walls[big][0], "s",
            walls[small][0], "fan-out 1,000", DOUBLING_TARGET, [walls[big][0]],
            {"doubling_ratio": ratio},
        ))  # fmt: skip
    return results
