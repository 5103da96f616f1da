"""What metrics and JSON logs cost the engine: bench/engine.py's parallel and per-step
workloads, run with them off and on, alternately, in the same process.

- off: the SilentFrontEnd-like bench front end, logging not configured (Python's
  default: warnings to stderr), as bench/engine.py runs;
- on: the same front end behind `ObservedFrontEnd` (the counters and histograms
  `serve` keeps), logging configured as `serve` does with OPSLOOP_LOG_FORMAT=json at
  INFO, written to a real file.

Workloads: `parallel` (64 x 200 ms python steps, max_parallel 16; wall seconds) and
`overhead` (200 near-empty steps; wall and CPU ms per step). A scrape is timed
apart, after each pair of runs: Prometheus scrapes every 15-60 s, not once a run,
so its cost is not a per-run figure. Each mode gets one
untimed warm-up run, then `--repeat` runs, off and on taking turns; the table shows
medians and on/off ratios. Target: ratio <= 1.05. Each workload is also measured
off against off (A/A): the spread of that ratio is the machine's noise.

    .venv/bin/python bench/observability.py [--repeat 7] [--skip-postgres]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

from engine import (  # noqa: E402
    STARTER,
    WORKERS,
    BenchFrontEnd,
    database,
    overhead_dag,
    parallel_dag,
    workflow_yaml,
)

from bot import logging_setup  # noqa: E402
from bot.metrics import DatabaseCollector, Metrics, ObservedFrontEnd  # noqa: E402
from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.workflow.loader import parse_workflow  # noqa: E402
from storage.types import utcnow  # noqa: E402

TARGET = 1.05
WORKLOADS = {"parallel": parallel_dag, "overhead": overhead_dag}


class Mode:
    """One orchestrator on its own database, observed or not."""

    def __init__(self, engine: Any, text: str, observed: bool, log_path: Path) -> None:
        self.front = BenchFrontEnd()
        self.observed, self.log_path = observed, log_path
        workflows = {w.name: w for w in [parse_workflow(text)]}
        front: Any = self.front
        self.metrics = Metrics()
        if observed:
            front = ObservedFrontEnd(self.front, self.metrics, utcnow, workflows)
            self.metrics.registry.register(DatabaseCollector(engine, utcnow, lambda: (0, 0.0)))
        self.orch = Orchestrator(engine, workflows, front_end=front, max_workers=WORKERS)
        self.name = next(iter(workflows))

    def run(self) -> tuple[float, float]:
        """Wall and CPU seconds of one run."""
        with self._logging():
            wall, cpu = time.monotonic(), time.process_time()
            run_id = self.orch.start_run(self.name, {}, started_by=STARTER)
            self.front.finish(run_id)
            return time.monotonic() - wall, time.process_time() - cpu

    def scrape(self) -> float:
        """Wall seconds of rendering /metrics (its database gauges read), as a scrape."""
        start = time.monotonic()
        self.metrics.exposition()
        return time.monotonic() - start

    @contextlib.contextmanager
    def _logging(self) -> Iterator[None]:
        root = logging.getLogger()
        saved = list(root.handlers), root.level
        if self.observed:
            with self.log_path.open("a") as out:
                logging_setup.configure(default_level="INFO", env={"OPSLOOP_LOG_FORMAT": "json"},
                                        stream=out, secrets=["xoxb-bench-secret"])  # fmt: skip
                try:
                    yield
                finally:
                    root.handlers[:] = saved[0]
                    root.setLevel(saved[1])
        else:
            yield


def measure(kind: str, workload: str, repeat: int, tmp: Path, on: bool = True) -> dict[str, Any]:
    """Off against on; with `on=False`, off against off: the noise floor of the ratio."""
    text = workflow_yaml(workload, WORKLOADS[workload](), WORKERS)
    samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    scrapes: list[float] = []
    with database(kind) as off_db, database(kind) as on_db:
        modes = {False: Mode(off_db, text, False, tmp / "off.log"),
                 True: Mode(on_db, text, on, tmp / "on.log")}  # fmt: skip
        for mode in modes.values():
            mode.orch.start()
            mode.run()  # warm-up
        try:
            for _ in range(repeat):
                for observed in (False, True):
                    samples[observed].append(modes[observed].run())
                scrapes.append(modes[True].scrape() if on else 0.0)
        finally:
            for mode in modes.values():
                mode.orch.close()
    n = len(WORKLOADS[workload]())
    out: dict[str, Any] = {"database": kind, "workload": workload, "steps": n}
    for observed, label in ((False, "off"), (True, "on")):
        out[f"{label}_wall_s"] = statistics.median(w for w, _ in samples[observed])
        out[f"{label}_cpu_ms_per_step"] = (
            statistics.median(c for _, c in samples[observed]) / n * 1000
        )
    out["scrape_ms"] = statistics.median(scrapes) * 1000
    out["wall_ratio"] = out["on_wall_s"] / out["off_wall_s"]
    out["cpu_ratio"] = out["on_cpu_ms_per_step"] / out["off_cpu_ms_per_step"]
    return out


def row(kind: str, workload: str, r: dict[str, Any], label: str, verdict: str) -> str:
    return (f"| {kind} | {workload} ({r['steps']} steps{label}) | {r['off_wall_s']:.3f} s "
            f"| {r['on_wall_s']:.3f} s | {r['wall_ratio']:.3f}x "
            f"| {r['off_cpu_ms_per_step']:.2f} | {r['on_cpu_ms_per_step']:.2f} "
            f"| {r['cpu_ratio']:.3f}x | {verdict} | {r['scrape_ms']:.1f} ms |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-postgres", action="store_true")
    args, _unknown = parser.parse_known_args(argv)
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    print(
        "| database | workload | off | on | on/off | CPU ms/step off | on | on/off | verdict "
        "| one scrape |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-obs-") as tmp:
        for kind in kinds:
            for workload in WORKLOADS:
                for on in (False, True):
                    r = measure(kind, workload, args.repeat, Path(tmp), on)
                    verdict = ("PASS" if r["wall_ratio"] <= TARGET else "FAIL") if on else "A/A"
                    label = "" if on else ", off vs off"
                    print(row(kind, workload, r, label, verdict), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
