"""Benchmark SQLModelSaver against LangGraph's official checkpointers.

What it measures, in one run, with the same workload for every saver:

- a fan-out graph: START fans out to `--fanout` nodes (default 200) that run in
  parallel, each writing its own small result into a reducer-merged dict, and
  all of them join into one final node;
- a chain graph: `--chain` nodes (default 50) in a row, each one incrementing a
  counter and appending a short string to a list.

Each graph is invoked `--runs` times (default 20), every invoke on a new
thread id, with sync `graph.invoke` and `max_concurrency=16`. One warm-up
invoke of each graph (on its own thread id) comes first and is not timed.

Savers and databases:

- SQLite (fresh temp dir): SQLModelSaver vs `SqliteSaver`;
- PostgreSQL (127.0.0.1:5432, database `test`, user `postgres`, trust auth):
  SQLModelSaver vs `PostgresSaver`, each in a fresh schema `bench_<random>`
  selected with `options=-csearch_path=...`; the schemas are dropped at the end.

Per saver it reports the wall time of the timed workload, the database size
after the run (SQLite: the .db file plus its -wal file; PostgreSQL: the sum of
`pg_total_relation_size` over the tables of the schema, so for SQLModelSaver
that includes opsloop's other, empty, tables), the time spent inside the
saver's put / put_writes / get_tuple / list (summed over threads), and checks
that `graph.get_state` of the last thread holds the expected final state.

Run from the repository root:

    .venv/bin/python bench/checkpointer.py
    .venv/bin/python bench/checkpointer.py --runs 5 --skip-postgres --json out.json
    .venv/bin/python bench/checkpointer.py --profile   # cProfile SQLModelSaver's methods

Needs the `bench` extra (langgraph-checkpoint-sqlite, langgraph-checkpoint-postgres).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import operator  # noqa: E402
import pstats  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Annotated, Any, TypedDict  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from langgraph.checkpoint.base import BaseCheckpointSaver  # noqa: E402
from langgraph.checkpoint.postgres import PostgresSaver  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.state import CompiledStateGraph  # noqa: E402

from bench._databases import PG_URL, pg_schema  # noqa: E402
from storage.checkpointer import SQLModelSaver  # noqa: E402

MAX_CONCURRENCY = 16
TIMED_METHODS = ("put", "put_writes", "get_tuple", "list")
MB = 1024 * 1024


# -- graphs -------------------------------------------------------------------


def merge(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    return {**left, **right}


class FanoutState(TypedDict, total=False):
    results: Annotated[dict[str, int], merge]
    total: int
    joins: Annotated[int, operator.add]


class ChainState(TypedDict, total=False):
    count: int
    log: Annotated[list[str], operator.add]


def build_fanout(n: int, saver: BaseCheckpointSaver, barrier: bool = False) -> CompiledStateGraph:
    """START -> n parallel nodes (each adds one entry to `results`) -> join.

    By default each node has its own edge to `join`: the n nodes run in one superstep, so
    `join` runs once, in the next. With `barrier`, one waiting edge `add_edge(names, "join")`
    is used instead; its channel is named `join:<all n names joined by +>:join` (over 1,200
    characters at n=200), which SQLModelSaver's VARCHAR(500) channel columns reject on
    PostgreSQL.
    """
    builder = StateGraph(FanoutState)
    names = [f"fan_{i}" for i in range(n)]

    def worker(i: int) -> Callable[[FanoutState], FanoutState]:
        def node(state: FanoutState) -> FanoutState:
            return {"results": {f"fan_{i}": i * i}}

        return node

    def join(state: FanoutState) -> FanoutState:
        return {"total": len(state["results"]), "joins": 1}

    for i, name in enumerate(names):
        builder.add_node(name, worker(i))
        builder.add_edge(START, name)
    builder.add_node("join", join)
    if barrier:
        builder.add_edge(names, "join")
    else:
        for name in names:
            builder.add_edge(name, "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=saver)


def build_chain(n: int, saver: BaseCheckpointSaver) -> CompiledStateGraph:
    """node_0 -> node_1 -> ... -> node_{n-1}, each bumping `count` and appending to `log`."""
    builder = StateGraph(ChainState)

    def step(i: int) -> Callable[[ChainState], ChainState]:
        def node(state: ChainState) -> ChainState:
            return {"count": state.get("count", 0) + 1, "log": [f"step {i} done"]}

        return node

    for i in range(n):
        builder.add_node(f"node_{i}", step(i))
        builder.add_edge(START if i == 0 else f"node_{i - 1}", f"node_{i}")
    builder.add_edge(f"node_{n - 1}", END)
    return builder.compile(checkpointer=saver)


def fanout_ok(values: dict[str, Any], n: int) -> bool:
    expected = {f"fan_{i}": i * i for i in range(n)}
    return values.get("results") == expected and values.get("total") == n and values["joins"] == 1


def chain_ok(values: dict[str, Any], n: int) -> bool:
    return values.get("count") == n and values.get("log") == [f"step {i} done" for i in range(n)]


# -- instrumentation ------------------------------------------------------------


@dataclass
class MethodTimes:
    """Calls and seconds spent inside each wrapped saver method, summed over threads."""

    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, elapsed: float) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed


class ThreadProfiles:
    """One cProfile.Profile per thread (cProfile only sees its own thread), merged at the end."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def get(self) -> cProfile.Profile:
        prof = getattr(self.local, "prof", None)
        if prof is None:
            prof = self.local.prof = cProfile.Profile()
            with self.lock:
                self.all.append(prof)
        return prof

    def report(self, top: int = 25, pattern: str = r"storage/|sqlalchemy") -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.all[0], stream=out)
        for prof in self.all[1:]:
            stats.add(prof)
        stats.sort_stats("cumulative").print_stats(pattern, top)
        return out.getvalue()


def instrument(
    saver: BaseCheckpointSaver, times: MethodTimes, profiles: ThreadProfiles | None
) -> None:
    """Wrap the saver's hot methods (on the instance) to time them, and profile if asked."""
    for name in TIMED_METHODS:
        original = getattr(saver, name)

        def wrapped(*args: Any, _name: str = name, _f: Any = original, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                if profiles is None:
                    result = _f(*args, **kwargs)
                    if _name == "list":  # a generator: time its consumption too
                        result = iter(list(result))
                    return result
                prof = profiles.get()
                result = prof.runcall(_f, *args, **kwargs)
                if _name == "list":
                    result = iter(prof.runcall(list, result))
                return result
            finally:
                times.add(_name, time.perf_counter() - start)

        setattr(saver, name, wrapped)


# -- workload -------------------------------------------------------------------


@dataclass
class Result:
    saver: str
    database: str
    wall_seconds: float
    fanout_seconds: float
    chain_seconds: float
    size_bytes: int
    size_detail: dict[str, int]
    fanout_ok: bool
    chain_ok: bool
    method_calls: dict[str, int]
    method_seconds: dict[str, float]


def invoke(graph: CompiledStateGraph, thread_id: str, initial: dict[str, Any]) -> None:
    config = {"configurable": {"thread_id": thread_id}, "max_concurrency": MAX_CONCURRENCY}
    graph.invoke(initial, config=config)


def run_workload(
    saver: BaseCheckpointSaver,
    args: argparse.Namespace,
    label: str,
    profiles: ThreadProfiles | None,
) -> tuple[float, float, float, bool, bool, MethodTimes]:
    """Warm up, then time `args.runs` invokes of each graph; check the last threads' state."""
    fanout = build_fanout(args.fanout, saver, args.barrier_join)
    chain = build_chain(args.chain, saver)
    tag = uuid.uuid4().hex[:8]
    invoke(fanout, f"warmup-fanout-{tag}", {"results": {}, "joins": 0})
    invoke(chain, f"warmup-chain-{tag}", {"count": 0, "log": []})

    times = MethodTimes()
    instrument(saver, times, profiles)
    print(f"  {label}: running {args.runs} x fanout({args.fanout}) ...", flush=True)
    start = time.perf_counter()
    for r in range(args.runs):
        invoke(fanout, f"fanout-{tag}-{r}", {"results": {}, "joins": 0})
    fanout_s = time.perf_counter() - start
    print(f"  {label}: fanout {fanout_s:.2f}s; running {args.runs} x chain({args.chain}) ...")
    start = time.perf_counter()
    for r in range(args.runs):
        invoke(chain, f"chain-{tag}-{r}", {"count": 0, "log": []})
    chain_s = time.perf_counter() - start
    print(f"  {label}: chain {chain_s:.2f}s", flush=True)

    last = args.runs - 1
    f_state = fanout.get_state({"configurable": {"thread_id": f"fanout-{tag}-{last}"}})
    c_state = chain.get_state({"configurable": {"thread_id": f"chain-{tag}-{last}"}})
    f_ok = fanout_ok(f_state.values, args.fanout) and not f_state.next
    c_ok = chain_ok(c_state.values, args.chain) and not c_state.next
    return fanout_s + chain_s, fanout_s, chain_s, f_ok, c_ok, times


def measure(
    name: str,
    database: str,
    saver: BaseCheckpointSaver,
    size: Callable[[], dict[str, int]],
    args: argparse.Namespace,
    profiles: ThreadProfiles | None = None,
) -> Result:
    wall, fan_s, chain_s, f_ok, c_ok, times = run_workload(
        saver, args, f"{name}/{database}", profiles
    )
    detail = size()
    return Result(
        saver=name,
        database=database,
        wall_seconds=wall,
        fanout_seconds=fan_s,
        chain_seconds=chain_s,
        size_bytes=sum(detail.values()),
        size_detail=detail,
        fanout_ok=f_ok,
        chain_ok=c_ok,
        method_calls=dict(times.calls),
        method_seconds=dict(times.seconds),
    )


# -- databases -------------------------------------------------------------------


def sqlite_sizes(path: Path) -> dict[str, int]:
    wal = path.with_name(path.name + "-wal")
    return {
        "db": path.stat().st_size if path.exists() else 0,
        "wal": wal.stat().st_size if wal.exists() else 0,
    }


def bench_sqlite(args: argparse.Namespace, profiles: ThreadProfiles | None) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-checkpointer-") as tmp:
        ours_path = Path(tmp) / "sqlmodel.db"
        saver = SQLModelSaver.from_url(f"sqlite:///{ours_path}")
        saver.setup()
        try:
            results.append(
                measure(
                    "SQLModelSaver",
                    "sqlite",
                    saver,
                    lambda: sqlite_sizes(ours_path),
                    args,
                    profiles,
                )
            )
        finally:
            saver.engine.dispose()

        theirs_path = Path(tmp) / "official.db"
        conn = sqlite3.connect(theirs_path, check_same_thread=False)
        try:
            official = SqliteSaver(conn)
            official.setup()
            results.append(
                measure("SqliteSaver", "sqlite", official, lambda: sqlite_sizes(theirs_path), args)
            )
        finally:
            conn.close()
    return results


def pg_sizes(admin: sa.Engine, schema: str) -> dict[str, int]:
    query = sa.text(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') ORDER BY c.relname"
    )
    with admin.connect() as conn:
        return {name: int(size) for name, size in conn.execute(query, {"schema": schema})}


def bench_postgres(args: argparse.Namespace, profiles: ThreadProfiles | None) -> list[Result]:
    results = []
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with pg_schema(admin) as schema:
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            saver = SQLModelSaver.from_url(url)
            saver.setup()
            try:
                results.append(
                    measure(
                        "SQLModelSaver",
                        "postgres",
                        saver,
                        lambda: pg_sizes(admin, schema),
                        args,
                        profiles,
                    )
                )
            finally:
                saver.engine.dispose()

        with pg_schema(admin) as schema:
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            with PostgresSaver.from_conn_string(url) as official:
                official.setup()
                results.append(
                    measure(
                        "PostgresSaver",
                        "postgres",
                        official,
                        lambda: pg_sizes(admin, schema),
                        args,
                    )
                )
    finally:
        admin.dispose()
    return results


# -- report -----------------------------------------------------------------------


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    """ours/theirs for time and size, per database."""
    out = {}
    for database in ("sqlite", "postgres"):
        rows = {r.saver: r for r in results if r.database == database}
        ours = rows.get("SQLModelSaver")
        theirs = rows.get("SqliteSaver" if database == "sqlite" else "PostgresSaver")
        if ours and theirs:
            out[database] = {
                "time": ours.wall_seconds / theirs.wall_seconds,
                "fanout_time": ours.fanout_seconds / theirs.fanout_seconds,
                "chain_time": ours.chain_seconds / theirs.chain_seconds,
                "size": ours.size_bytes / theirs.size_bytes,
            }
    return out


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"workload: {args.runs} x fanout({args.fanout}) + {args.runs} x chain({args.chain}), "
        f"max_concurrency={MAX_CONCURRENCY}, sync invoke, "
        f"join by {'one waiting edge' if args.barrier_join else 'one edge per node'}"
    )
    header = (
        f"{'saver':<14} {'database':<9} {'wall s':>8} {'fanout s':>9} {'chain s':>8} "
        f"{'size MB':>8}  {'correct':<7} size detail"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.database == "sqlite":
            db, wal = r.size_detail["db"] / MB, r.size_detail["wal"] / MB
            detail = f"db {db:.2f} MB + wal {wal:.2f} MB"
        else:
            detail = ", ".join(
                f"{k} {v / MB:.2f}" for k, v in r.size_detail.items() if v >= 64 * 1024
            )
        ok = "yes" if r.fanout_ok and r.chain_ok else f"NO f={r.fanout_ok} c={r.chain_ok}"
        print(
            f"{r.saver:<14} {r.database:<9} {r.wall_seconds:>8.2f} {r.fanout_seconds:>9.2f} "
            f"{r.chain_seconds:>8.2f} {r.size_bytes / MB:>8.2f}  {ok:<7} {detail}"
        )
    print()
    print("ours/theirs (lower is better for us):")
    for database, q in ratios(results).items():
        print(
            f"  {database:<9} time {q['time']:.2f}x (fanout {q['fanout_time']:.2f}x, "
            f"chain {q['chain_time']:.2f}x)   size {q['size']:.2f}x"
        )
    print()
    print("seconds inside saver methods, summed over threads (calls in parentheses):")
    for r in results:
        parts = "  ".join(
            f"{m} {r.method_seconds.get(m, 0.0):.2f} ({r.method_calls.get(m, 0)})"
            for m in TIMED_METHODS
        )
        print(f"  {r.saver:<14} {r.database:<9} {parts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="invokes per graph (default 20)")
    parser.add_argument("--fanout", type=int, default=200, help="parallel nodes (default 200)")
    parser.add_argument("--chain", type=int, default=50, help="chain length (default 50)")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--barrier-join",
        action="store_true",
        help="join the fan-out with one waiting edge (its channel name is ~6 chars per node)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile SQLModelSaver's methods (all threads); timings then include its overhead",
    )
    args = parser.parse_args(argv)

    profiles: dict[str, ThreadProfiles] = {}
    results: list[Result] = []
    print("SQLite:", flush=True)
    if args.profile:
        profiles["sqlite"] = ThreadProfiles()
    results += bench_sqlite(args, profiles.get("sqlite"))
    if not args.skip_postgres:
        print("PostgreSQL:", flush=True)
        if args.profile:
            profiles["postgres"] = ThreadProfiles()
        results += bench_postgres(args, profiles.get("postgres"))

    print_report(results, args)
    for database, prof in profiles.items():
        print()
        print(f"cProfile of SQLModelSaver on {database}, top 25 by cumulative time:")
        print(prof.report())

    if args.json:
        payload = {
            "workload": {
                "runs": args.runs,
                "fanout": args.fanout,
                "chain": args.chain,
                "max_concurrency": MAX_CONCURRENCY,
                "barrier_join": args.barrier_join,
                "profiled": args.profile,
            },
            "results": [asdict(r) for r in results],
            "ratios_ours_over_theirs": ratios(results),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    failed = [r for r in results if not (r.fanout_ok and r.chain_ok)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
