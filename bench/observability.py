"""What metrics and JSON logs cost the engine: bench/engine.py's parallel and per-step
workloads, run with them off and on, alternately, in the same process.

- off: the SilentFrontEnd-like bench front end, logging not configured (Python's
  default: warnings to stderr), as bench/engine.py runs;
- on: the same front end behind `ObservedFrontEnd` (the counters and histograms
  `serve` keeps), logging configured as `serve` does with OPSLOOP_LOG_FORMAT=json at
  INFO, written to a real file;
- traced: on, plus tracing as `serve` does with opsloop[otel] and
  OTEL_EXPORTER_OTLP_ENDPOINT (bot/tracing.py): spans batched and sent over OTLP/HTTP
  to a local sink that answers 200 (so serialising and sending are counted).

Workloads: `parallel` (64 x 200 ms python steps, max_parallel 16; wall seconds) and
`overhead` (200 near-empty steps; wall and CPU ms per step). A scrape is timed
apart, after each pair of runs: Prometheus scrapes every 15-60 s, not once a run,
so its cost is not a per-run figure. Each mode gets one
untimed warm-up run, then `--repeat` runs, off and on taking turns; the table shows
medians and on/off ratios. Target: ratio <= 1.05. Each workload is also measured
off against off (A/A): the spread of that ratio is the machine's noise. `--no-tracing`
leaves the traced rows out (needed without the otel extra).

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
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
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


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that takes every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def traced(front: Any, workflows: Any, sink: str, queue: int = 2048) -> tuple[Any, Any]:
    """`front` traced as serve traces it, exporting to `sink`; and its provider. `queue`:
    spans waiting to be sent (the SDK's default 2048 drops spans beyond it)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from bot.tracing import TracingFrontEnd

    provider = TracerProvider()
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=sink), max_queue_size=queue)
    provider.add_span_processor(processor)
    return TracingFrontEnd(front, provider.get_tracer("bench"), utcnow, workflows), provider


class Mode:
    """One orchestrator on its own database: off, on (metrics and JSON logs) or traced."""

    def __init__(self, engine: Any, text: str, mode: str, log_path: Path, sink: str) -> None:
        self.front = BenchFrontEnd()
        self.observed, self.log_path = mode != "off", log_path
        workflows = {w.name: w for w in [parse_workflow(text)]}
        front: Any = self.front
        self.metrics = Metrics()
        self.provider: Any = None
        if self.observed:
            front = ObservedFrontEnd(self.front, self.metrics, utcnow, workflows)
            self.metrics.registry.register(DatabaseCollector(engine, utcnow, lambda: (0, 0.0)))
        if mode == "traced":
            front, self.provider = traced(front, workflows, sink)
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


def measure(
    kind: str, workload: str, repeat: int, tmp: Path, against: str, sink: str
) -> dict[str, Any]:
    """Off against `against` (on, traced, or off: the noise floor of the ratio)."""
    text = workflow_yaml(workload, WORKLOADS[workload](), WORKERS)
    samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    scrapes: list[float] = []
    on = against != "off"
    with database(kind) as off_db, database(kind) as on_db:
        modes = {False: Mode(off_db, text, "off", tmp / "off.log", sink),
                 True: Mode(on_db, text, against, tmp / "on.log", sink)}  # fmt: skip
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
                if mode.provider is not None:
                    mode.provider.shutdown()
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


def observer_cost(mode: str, sink: str, steps: int = 20_000) -> float:
    """CPU microseconds the front-end observers add per step, measured apart from the
    engine (so the machine's wall-clock noise does not swamp them): a run's start and
    end, and each step told running and then succeeded, as a pass tells them."""
    from datetime import timedelta

    from orchestrator.protocol import RunView, SilentFrontEnd, StepView

    text = workflow_yaml("overhead", WORKLOADS["overhead"](), WORKERS)
    workflows = {w.name: w for w in [parse_workflow(text)]}
    front: Any = SilentFrontEnd()
    provider = None
    if mode != "off":
        front = ObservedFrontEnd(front, Metrics(), utcnow, workflows)
    if mode == "traced":
        front, provider = traced(front, workflows, sink, queue=steps * 2)  # none dropped
    name = next(iter(workflows))
    ids = [s.id for s in workflows[name].steps]
    t0 = utcnow()
    cpu = time.process_time()
    for n in range(steps // len(ids)):
        pending = tuple(StepView(step_id, "python", "pending") for step_id in ids)
        run = RunView(f"r-{n}", name, "running", {}, STARTER, created_at=t0, steps=pending)
        front.run_started(run)
        for i, step_id in enumerate(ids):
            start = t0 + timedelta(milliseconds=i)
            front.step_changed(run, StepView(step_id, "python", "running", 1, start))
            done = StepView(step_id, "python", "succeeded", 1, start, start + timedelta(0, 0, 500))
            run = run.with_step(
                step_id, status="succeeded", started_at=start, finished_at=done.finished_at
            )
            front.step_changed(run, done)
        front.run_finished(RunView(run.id, name, "succeeded", {}, STARTER, created_at=t0))
    if provider is not None:
        provider.shutdown()  # what is left to send is sent: its cost counts
    return (time.process_time() - cpu) / (steps // len(ids) * len(ids)) * 1e6


def row(kind: str, workload: str, r: dict[str, Any], label: str, verdict: str) -> str:
    return (f"| {kind} | {workload} ({r['steps']} steps{label}) | {r['off_wall_s']:.3f} s "
            f"| {r['on_wall_s']:.3f} s | {r['wall_ratio']:.3f}x "
            f"| {r['off_cpu_ms_per_step']:.2f} | {r['on_cpu_ms_per_step']:.2f} "
            f"| {r['cpu_ratio']:.3f}x | {verdict} | {r['scrape_ms']:.1f} ms |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-tracing", action="store_true")
    args, _unknown = parser.parse_known_args(argv)
    modes = ["off", "on"] + ([] if args.no_tracing else ["traced"])
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    print(
        "| database | workload | off | on | on/off | CPU ms/step off | on | on/off | verdict "
        "| one scrape |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-obs-") as tmp, otlp_sink() as sink:
        for kind in kinds:
            for workload in WORKLOADS:
                for against in modes:
                    r = measure(kind, workload, args.repeat, Path(tmp), against, sink)
                    ok = "PASS" if r["wall_ratio"] <= TARGET else "FAIL"
                    verdict = ok if against != "off" else "A/A"
                    label = {"off": ", off vs off", "on": "", "traced": ", traced"}[against]
                    print(row(kind, workload, r, label, verdict), flush=True)
        print("\nCPU us per step added by the front-end observers alone (20,000 steps):")
        base = observer_cost("off", sink)
        for mode in modes[1:]:
            print(f"- {mode}: {observer_cost(mode, sink) - base:.1f} us/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
