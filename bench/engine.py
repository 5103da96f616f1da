"""Benchmark the orchestrator's scheduling against ideal times and plain baselines.

Four measurements, each on a SQLite file (fresh temp dir) and on PostgreSQL
(127.0.0.1:5432, database `test`, user `postgres`, a fresh schema `bench_<random>`
selected with `options=-csearch_path=...`, dropped at the end):

- parallel: 64 independent python steps that each sleep 200 ms (I/O-like),
  workflow `max_parallel: 16`. Ideal: 64 x 0.2 s / 16 = 0.8 s. Target <= 1.10x.
  These tasks take no `ctx`, so they cannot pause and run without LangGraph.
- parallel_ctx: the same, with tasks that take `ctx` (they could ask a person), so
  each step runs as its own checkpointed LangGraph thread. No target: it shows
  what that path costs beside `parallel`.
- critical: three chains (1 x 1.0 s; 5 x 0.2 s; 10 x 0.1 s) joined by a final
  step. Ideal: the critical path, 1.0 s. Target <= 1.10x. The same DAG also runs
  once as a one-node-per-step LangGraph StateGraph (no checkpointer, in memory,
  `max_concurrency=16`), whose supersteps make it wait for each level's slowest
  node: expect about the sum of the per-level maxima (2.3 s).
- scarce: `max_parallel: 2`, six 1 s steps listed before a chain of three 1 s steps.
  Best makespan 5 s (the chain starts at once); target <= 1.05x.
- overhead: 200 near-empty steps (100 independent, 10 chains of 10), against a bare
  `ThreadPoolExecutor(16)` running the same functions in the same dependency
  order. Reports the engine's cost per step in ms (wall and CPU). No target.
- resume: 200 runs of `approval gate -> step`; each gate is approved (by U0001 or
  U0002, the gate's approvers, never the run's starter U0900) one at a time, and
  the latency is from calling `decide()` to the next step's function starting.
  Reports p50 / p99. No target.
- scaling: one run of N no-op steps as a fan-out (N in `--sizes`, default
  1000,2000,10000) and as a chain (`--chain`, default 2000), against the same DAG as
  one in-memory LangGraph StateGraph. Targets: per step within 1.5x of LangGraph's,
  and the 2,000 fan-out at most 2.2x the 1,000 one (bench/engine_scaling.py).

Each engine measurement runs once untimed (warm-up), then `--repeat` times (default 3);
the table shows the median and the min-max spread. A run ends when the front end hears
`run_finished` (after the run's final status is committed), so the bench adds no polling.
Step functions are in bench/engine_tasks.py and stamp `time.monotonic()` as they start.

Run from the repository root:

    .venv/bin/python bench/engine.py
    .venv/bin/python bench/engine.py --skip-postgres --only parallel,critical --repeat 5
    .venv/bin/python bench/engine.py --profile   # cProfile (CPU time) of the engine's threads
    .venv/bin/python bench/engine.py --only scaling --sizes 1000,2000 --chain 1000

Unknown options (e.g. bench/checkpointer.py's --runs, when run by `./dev bench`) are ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # workflows name their tasks `engine_tasks:<fn>`

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Annotated, Any, TypedDict  # noqa: E402

import engine_scaling  # noqa: E402
import engine_tasks  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from langgraph.graph import START, StateGraph  # noqa: E402

from bench._databases import database_url  # noqa: E402
from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.protocol import InteractionView, RunView, SilentFrontEnd  # noqa: E402
from orchestrator.workflow.loader import parse_workflow  # noqa: E402
from storage.engine import create_engine  # noqa: E402
from storage.schema import setup  # noqa: E402

WORKERS = 16
PROFILE_CLOCK = time.thread_time  # CPU time; a probe may set time.perf_counter (wall)
TARGET = 1.10
SECONDS = {"sleep_1000ms": 1.0, "sleep_200ms": 0.2, "sleep_200ms_ctx": 0.2, "sleep_100ms": 0.1,
           "noop": 0.0}  # fmt: skip
STARTER, APPROVERS = "U0900", ("U0001", "U0002")
MEASUREMENTS = ("parallel", "parallel_ctx", "critical", "scarce", "overhead", "resume", "scaling")
SCARCE_TARGET = 1.05
RUN_TIMEOUT_S = 120.0
COLUMNS = ("measurement", "database", "result", "baseline", "ratio", "target", "verdict", "notes")


# -- workloads ----------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One step of a benchmark DAG: its id, its engine_tasks function, what it needs."""

    id: str
    fn: str
    needs: tuple[str, ...] = ()


def chain(prefix: str, n: int, fn: str) -> list[Task]:
    return [Task(f"{prefix}{i}", fn, (f"{prefix}{i - 1}",) if i else ()) for i in range(n)]


def parallel_dag(fn: str = "sleep_200ms") -> list[Task]:
    return [Task(f"p{i}", fn) for i in range(64)]


def critical_dag() -> list[Task]:
    a, b, c = (
        chain("a", 1, "sleep_1000ms"),
        chain("b", 5, "sleep_200ms"),
        chain("c", 10, "sleep_100ms"),
    )
    return [*a, *b, *c, Task("join", "noop", (a[-1].id, b[-1].id, c[-1].id))]


def scarce_dag() -> list[Task]:
    """Six 1 s steps listed before a chain of three: with two slots, the best makespan
    (5 s) starts the chain at once; file order starts it last (6 s)."""
    return [*(Task(f"s{i}", "sleep_1000ms") for i in range(6)), *chain("c", 3, "sleep_1000ms")]


def overhead_dag() -> list[Task]:
    chains = [t for k in range(10) for t in chain(f"c{k}_", 10, "noop")]
    return [*(Task(f"i{i}", "noop") for i in range(100)), *chains]


def workflow_yaml(name: str, tasks: list[Task], max_parallel: int | None = None) -> str:
    lines = [f"name: {name}"] + ([f"max_parallel: {max_parallel}"] if max_parallel else [])
    lines.append("steps:")
    for t in tasks:
        lines += [f"  - id: {t.id}", f"    python: engine_tasks:{t.fn}"]
        if t.needs:
            lines.append(f"    needs: [{', '.join(t.needs)}]")
    return "\n".join(lines) + "\n"


GATED = f"""
name: gated
steps:
  - id: gate
    approval:
      message: "Go on?"
      approvers: {{users: [{", ".join(APPROVERS)}]}}
  - id: after
    needs: [gate]
    python: engine_tasks:noop
"""


def level_maxima(tasks: list[Task]) -> list[float]:
    """The slowest task of each superstep when every task is one LangGraph node."""
    level: dict[str, int] = {}
    for t in tasks:  # tasks are listed after their needs
        level[t.id] = 1 + max((level[n] for n in t.needs), default=-1)
    maxima = [0.0] * (max(level.values()) + 1)
    for t in tasks:
        maxima[level[t.id]] = max(maxima[level[t.id]], SECONDS[t.fn])
    return maxima


# -- a front end that tells the bench when things happen ------------------------------


class BenchFrontEnd(SilentFrontEnd):
    """Records finished runs and opened interactions, with the moment each was reported."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.finished: dict[str, tuple[float, RunView]] = {}
        self.opened: dict[str, str] = {}  # run id -> interaction id

    def run_finished(self, run: RunView) -> None:
        with self.changed:
            self.finished[run.id] = (time.monotonic(), run)
            self.changed.notify_all()

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        with self.changed:
            self.opened[run.id] = interaction.id
            self.changed.notify_all()

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(ready, timeout=RUN_TIMEOUT_S):
                raise TimeoutError(f"no {what} within {RUN_TIMEOUT_S:g} s")

    def finish(self, run_id: str) -> tuple[float, RunView]:
        self.wait_for(lambda: run_id in self.finished, f"end of run {run_id}")
        at, run = self.finished[run_id]
        if run.status != "succeeded":
            raise RuntimeError(f"run {run_id} ended {run.status}: {run.error}")
        return at, run


# -- profiling ------------------------------------------------------------------------


class ThreadProfiles:
    """One cProfile.Profile per thread, timing CPU (not wall) time, merged at the end."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if getattr(self.local, "active", False):  # already inside a profiled call
                return fn(*args, **kwargs)
            prof = getattr(self.local, "prof", None)
            if prof is None:
                prof = self.local.prof = cProfile.Profile(PROFILE_CLOCK)
                with self.lock:
                    self.all.append(prof)
            self.local.active = True
            try:
                return prof.runcall(fn, *args, **kwargs)
            finally:
                self.local.active = False

        return wrapped

    def instrument(self, orch: Orchestrator) -> None:
        """Profile the calls that drive runs, and everything the step pool runs."""
        for name in ("start_run", "decide"):
            setattr(orch, name, self.wrap(getattr(orch, name)))
        advancer = orch._advancer  # the step pool is not part of the API
        submit = advancer.submit
        advancer.submit = lambda fn, *args: submit(self.wrap(fn), *args)  # type: ignore[method-assign]

    def report(self, top: int = 30) -> str:
        if not self.all:
            return "(nothing profiled)\n"
        out = io.StringIO()
        stats = pstats.Stats(self.all[0], stream=out)
        for prof in self.all[1:]:
            stats.add(prof)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(r"orchestrator/|storage/", top)
        return out.getvalue()


# -- databases -----------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str) -> Iterator[sa.Engine]:
    """A fresh, set-up opsloop database: a SQLite file, or a PostgreSQL schema dropped on exit."""
    with database_url(kind, "bench-engine-") as url:
        engine = create_engine(url)
        try:
            setup(engine)
            yield engine
        finally:
            engine.dispose()


@contextlib.contextmanager
def orchestrator(
    kind: str, workflow_texts: list[str], profiles: ThreadProfiles | None
) -> Iterator[tuple[Orchestrator, BenchFrontEnd]]:
    front = BenchFrontEnd()
    workflows = {w.name: w for w in map(parse_workflow, workflow_texts)}
    with database(kind) as engine:
        orch = Orchestrator(engine, workflows, front_end=front, max_workers=WORKERS)
        orch.start()
        if profiles is not None:
            profiles.instrument(orch)
        try:
            yield orch, front
        finally:
            orch.close()


# -- measurements ----------------------------------------------------------------------


@dataclass
class Result:
    measurement: str
    database: str
    value: float  # the median of `samples`
    unit: str
    baseline: float | None
    baseline_label: str
    target: float | None  # the highest acceptable value / baseline
    samples: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return "-"
        return "PASS" if self.ratio <= self.target else "FAIL"


def timed_run(orch: Orchestrator, front: BenchFrontEnd, workflow: str) -> tuple[float, RunView]:
    """Wall seconds from start_run() to the run's end, and the finished run."""
    start = time.monotonic()
    run_id = orch.start_run(workflow, {}, started_by=STARTER)
    end, run = front.finish(run_id)
    return end - start, run


def repeated(
    kind: str,
    name: str,
    tasks: list[Task],
    max_parallel: int | None,
    args: argparse.Namespace,
    profiles: ThreadProfiles | None,
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `args.repeat` runs of a DAG, after one untimed warm-up run."""
    walls, cpus = [], []
    with orchestrator(kind, [workflow_yaml(name, tasks, max_parallel)], profiles) as (orch, front):
        timed_run(orch, front, name)
        for _ in range(args.repeat):
            cpu = time.process_time()
            wall, _run = timed_run(orch, front, name)
            walls.append(wall)
            cpus.append(time.process_time() - cpu)
    return walls, cpus


def measure_parallel(kind: str, args: argparse.Namespace, prof: ThreadProfiles | None) -> Result:
    return _parallel(kind, "parallel", "sleep_200ms", TARGET, args, prof)


def measure_parallel_ctx(
    kind: str, args: argparse.Namespace, prof: ThreadProfiles | None
) -> Result:
    return _parallel(kind, "parallel_ctx", "sleep_200ms_ctx", None, args, prof)


def _parallel(
    kind: str,
    name: str,
    fn: str,
    target: float | None,
    args: argparse.Namespace,
    prof: ThreadProfiles | None,
) -> Result:
    tasks = parallel_dag(fn)
    walls, cpus = repeated(kind, name, tasks, WORKERS, args, prof)
    ideal = len(tasks) * SECONDS[fn] / WORKERS
    label = "" if target else ", tasks take ctx (LangGraph)"
    return Result(
        f"parallel 64 x 200 ms, max_parallel 16{label}",
        kind,
        statistics.median(walls),
        "s",
        ideal,
        "ideal",
        target,
        walls,
        {"cpu_s": statistics.median(cpus)},
    )


def measure_critical(kind: str, args: argparse.Namespace, prof: ThreadProfiles | None) -> Result:
    walls, cpus = repeated(kind, "critical", critical_dag(), None, args, prof)
    return Result(
        "critical path 1x1.0 | 5x0.2 | 10x0.1 s",
        kind,
        statistics.median(walls),
        "s",
        1.0,
        "ideal",
        TARGET,
        walls,
        {"cpu_s": statistics.median(cpus)},
    )


def measure_scarce(kind: str, args: argparse.Namespace, prof: ThreadProfiles | None) -> Result:
    walls, cpus = repeated(kind, "scarce", scarce_dag(), 2, args, prof)
    return Result(
        "scarce slots: max_parallel 2, 6 x 1 s then a 3 x 1 s chain",
        kind,
        statistics.median(walls),
        "s",
        5.0,
        "best makespan",
        SCARCE_TARGET,
        walls,
        {"cpu_s": statistics.median(cpus)},
    )


class DagState(TypedDict, total=False):
    started: Annotated[dict[str, float], lambda left, right: {**left, **right}]


def node(task: Task) -> Callable[[DagState], DagState]:
    fn = getattr(engine_tasks, task.fn)

    def run(state: DagState) -> DagState:
        return {"started": {task.id: fn()["at"]}}

    return run


def measure_langgraph(args: argparse.Namespace) -> Result:
    """The critical-path DAG as one StateGraph, one node per step, in memory."""
    tasks = critical_dag()
    builder = StateGraph(DagState)
    for t in tasks:
        builder.add_node(t.id, node(t))
        if len(t.needs) > 1:
            builder.add_edge(list(t.needs), t.id)  # one waiting edge: the join runs once
        else:
            builder.add_edge(t.needs[0] if t.needs else START, t.id)
    graph = builder.compile()
    config = {"max_concurrency": WORKERS}
    graph.invoke({"started": {}}, config)
    walls = []
    for _ in range(args.repeat):
        start = time.monotonic()
        state = graph.invoke({"started": {}}, config)
        walls.append(time.monotonic() - start)
        assert len(state["started"]) == len(tasks)
    maxima = level_maxima(tasks)
    return Result(
        "critical path as a LangGraph StateGraph",
        "in memory",
        statistics.median(walls),
        "s",
        1.0,
        "ideal",
        None,
        walls,
        {
            "sum_of_level_maxima_s": sum(maxima),
            "supersteps": len(maxima),
            "join_started_after_s": state["started"]["join"] - start,
        },
    )


def bare_pool_wall(tasks: list[Task], pool: ThreadPoolExecutor) -> float:
    """Run the DAG's functions on a plain pool, each submitted when its needs are done."""
    fns = {t.id: getattr(engine_tasks, t.fn) for t in tasks}
    waiting = {t.id: len(t.needs) for t in tasks}
    dependents: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for n in t.needs:
            dependents[n].append(t.id)
    lock, done, left = threading.Lock(), threading.Event(), [len(tasks)]

    def finished(task_id: str) -> None:
        with lock:
            left[0] -= 1
            ready = []
            for d in dependents[task_id]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    ready.append(d)
            if left[0] == 0:
                done.set()
        for d in ready:
            submit(d)

    def submit(task_id: str) -> None:
        pool.submit(fns[task_id]).add_done_callback(lambda _f: finished(task_id))

    start = time.monotonic()
    for t in tasks:
        if not t.needs:
            submit(t.id)
    done.wait(RUN_TIMEOUT_S)
    return time.monotonic() - start


def measure_overhead(kind: str, args: argparse.Namespace, prof: ThreadProfiles | None) -> Result:
    tasks = overhead_dag()
    walls, cpus = repeated(kind, "overhead", tasks, WORKERS, args, prof)
    with ThreadPoolExecutor(WORKERS) as pool:
        bare_pool_wall(tasks, pool)
        bare = statistics.median(bare_pool_wall(tasks, pool) for _ in range(args.repeat))
    wall, n = statistics.median(walls), len(tasks)
    return Result(
        f"overhead, {n} near-empty steps",
        kind,
        wall,
        "s",
        bare,
        "bare pool",
        None,
        walls,
        {
            "ms_per_step": (wall - bare) / n * 1000,
            "cpu_ms_per_step": statistics.median(cpus) / n * 1000,
        },
    )


def measure_resume(kind: str, args: argparse.Namespace, prof: ThreadProfiles | None) -> Result:
    """decide() -> the step after the gate starting, over `args.gates` gated runs."""
    with orchestrator(kind, [GATED], prof) as (orch, front):
        run_ids = [orch.start_run("gated", {}, started_by=STARTER) for _ in range(args.gates + 2)]
        front.wait_for(lambda: all(r in front.opened for r in run_ids), "gate opened")
        latencies, decide_s = [], []
        for n, run_id in enumerate(run_ids):
            start = time.monotonic()
            orch.decide(front.opened[run_id], APPROVERS[n % 2], "approve")
            decided = time.monotonic()
            _end, run = front.finish(run_id)
            gate, after = (next(s for s in run.steps if s.step_id == i) for i in ("gate", "after"))
            assert gate.outputs["approved_by"] == [APPROVERS[n % 2]], gate.outputs
            if n >= 2:  # the first two warm up
                latencies.append(after.outputs["at"] - start)
                decide_s.append(decided - start)
    ms = sorted(x * 1000 for x in latencies)
    return Result(
        f"resume latency p50, {len(ms)} gates",
        kind,
        statistics.median(ms),
        "ms",
        None,
        "-",
        None,
        [statistics.median(ms)],
        {
            "p50_ms": statistics.median(ms),
            "p99_ms": percentile(ms, 99),
            "max_ms": ms[-1],
            "decide_call_p50_ms": statistics.median(decide_s) * 1000,
        },
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


# -- report ------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"


def row(r: Result) -> list[str]:
    """The table's columns for one result."""
    value = seconds(r.value) if r.unit == "s" else f"{r.value:.1f} {r.unit}"
    base = f"{seconds(r.baseline)} {r.baseline_label}" if r.baseline else "-"
    ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x" if r.ratio < 100 else f"{r.ratio:.0f}x"
    target = f"<= {r.target:.2f}x" if r.target else "-"
    notes = [f"runs {min(r.samples):.3f}-{max(r.samples):.3f} s"] if len(r.samples) > 1 else []
    extra = r.extra
    if "ms_per_step" in extra:
        notes.insert(
            0,
            f"{extra['ms_per_step']:.1f} ms/step over the pool, "
            f"cpu {extra['cpu_ms_per_step']:.1f} ms/step",
        )
    elif "per_step_ms" in extra:
        cpu = extra.get("cpu_per_step_ms")
        notes.insert(0, f"{extra['per_step_ms']:.2f} ms/step"
                        + ("" if cpu is None else f", cpu {cpu:.2f} ms/step"))  # fmt: skip
    elif "doubling_ratio" in extra:
        notes = []
    elif "cpu_s" in extra:
        notes.append(f"cpu {extra['cpu_s']:.2f} s")
    if "p99_ms" in extra:
        notes = [
            f"p99 {extra['p99_ms']:.1f} ms, max {extra['max_ms']:.1f} ms, "
            f"decide() returns in {extra['decide_call_p50_ms']:.1f} ms (p50)"
        ]
    if "sum_of_level_maxima_s" in extra:
        notes.append(
            f"sum of its {extra['supersteps']} level maxima {extra['sum_of_level_maxima_s']:.2f} s"
        )
    return [r.measurement, r.database, value, base, ratio, target, r.verdict, "; ".join(notes)]


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\nmedian of {args.repeat} timed runs after one warm-up run; {WORKERS} workers")
    rows = [list(COLUMNS), *map(row, results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for n, cells in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)), cells[-1])
        if n == 0:
            print("-" * (sum(widths) + 2 * len(widths) + len("notes")))


def run_all(args: argparse.Namespace) -> tuple[list[Result], dict[str, ThreadProfiles]]:
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    measures = {
        "parallel": measure_parallel,
        "parallel_ctx": measure_parallel_ctx,
        "critical": measure_critical,
        "scarce": measure_scarce,
        "overhead": measure_overhead,
        "resume": measure_resume,
        "scaling": lambda kind, args, prof: engine_scaling.measure(
            sys.modules[__name__], kind, args, prof
        ),
    }
    results: list[Result] = []
    profiles: dict[str, ThreadProfiles] = {}
    for kind in kinds:
        for name in args.only:
            print(f"{kind}: {name} ...", flush=True)
            prof = profiles.setdefault(kind, ThreadProfiles()) if args.profile else None
            got = measures[name](kind, args, prof)
            results.extend(got if isinstance(got, list) else [got])
            if name == "critical" and kind == kinds[-1]:
                print("langgraph: critical ...", flush=True)
                results.append(measure_langgraph(args))
    return results, profiles


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--gates", type=int, default=200, help="gates timed by `resume`")
    parser.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated subset of {','.join(MEASUREMENTS)}",
    )
    parser.add_argument("--sizes", default="1000,2000,10000",
                        help="fan-out sizes timed by `scaling` (comma-separated)")  # fmt: skip
    parser.add_argument("--chain", type=int, default=2000, help="chain length timed by `scaling`")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the engine's threads (CPU time); slows every run",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"bench/engine.py: ignoring {' '.join(unknown)}", file=sys.stderr)
    args.sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    bad = sorted(set(args.only) - set(MEASUREMENTS))
    if bad:
        parser.error(f"unknown measurement(s) {', '.join(bad)}; choose from {MEASUREMENTS}")
    if args.repeat < 1 or args.gates < 1:
        parser.error("--repeat and --gates must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results, profiles = run_all(args)
    print_report(results, args)
    for kind, prof in profiles.items():
        print(f"\ncProfile of the engine on {kind} (CPU seconds per thread, summed):")
        print(prof.report())
    if args.json:
        payload = {
            "repeat": args.repeat,
            "workers": WORKERS,
            "target_ratio": TARGET,
            "profiled": args.profile,
            "results": [{**asdict(r), "ratio": r.ratio, "verdict": r.verdict} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0  # a missed target is a finding, not an error: `./dev bench` goes on


if __name__ == "__main__":
    sys.exit(main())
