"""Benchmark `opsloop runs` against a lean script doing the same query with Python and
SQLAlchemy alone (issue 16: 0.87 s against 0.15 s when read commands imported LangGraph
and migrated the database).

Both run as fresh processes, alternating, `--repeat` times (default 15) against the same
SQLite file holding `--runs` runs (default 200) made by the real engine; the lean script
selects the newest 20 runs with their open-gate counts, as `opsloop runs` does, and prints
them. Reported: median and p90 wall time of each, and the ratio of the medians.
Target: `opsloop runs` <= 2x the lean script.

    .venv/bin/python bench/cli_startup.py [--repeat 15] [--runs 200] [--before /work/main]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAN = """
import sys
import sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
query = sa.text(
    "SELECT r.id, r.workflow, r.status, r.started_by, r.created_at, r.finished_at,"
    " (SELECT count(*) FROM interaction i WHERE i.run_id = r.id AND i.status = 'pending')"
    " FROM workflow_run r ORDER BY r.created_at DESC, r.id LIMIT 20")
with engine.connect() as conn:
    rows = conn.execute(query).all()
for row in rows:
    print("  ".join(str(v) for v in row))
"""


def populate(url: str, runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from orchestrator.engine import Orchestrator
    from orchestrator.workflow.loader import parse_workflow
    from storage.engine import create_engine
    from storage.schema import setup

    engine = create_engine(url)
    setup(engine)
    flow = parse_workflow("name: noop\nsteps:\n  - id: a\n    shell: ['true']\n")
    orch = Orchestrator(engine, {"noop": flow})
    orch.start(recover=False)
    try:
        for _ in range(runs):
            orch.wait(orch.start_run("noop", {}, started_by="U0BENCH"), 60)
    finally:
        orch.close()
        engine.dispose()


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=ROOT, text=True)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also time `opsloop runs` of another checkout (e.g. /work/main)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        populate(url, args.runs)
        env = {**os.environ, "DATABASE_URL": url}
        opsloop = [str(Path(sys.executable).with_name("opsloop")), "runs"]
        lean = [sys.executable, "-c", LEAN, url]
        timed(lean, env), timed(opsloop, env)  # warm the page cache
        times: dict[str, list[float]] = {"lean": [], "opsloop": []}
        # Another checkout's code cannot win over this one's editable install on sys.path,
        # so both are run without `site`, on [checkout, site-packages]: the same footing.
        checkouts = {"before": str(args.before), "after": str(ROOT)} if args.before else {}
        site = sysconfig.get_paths()["purelib"]
        for name in checkouts:
            times[name] = []
        for _ in range(args.repeat):
            times["lean"].append(timed(lean, env))
            times["opsloop"].append(timed(opsloop, env))
            for name, checkout in checkouts.items():
                code = (f"import sys; sys.path[:0] = [{checkout!r}, {site!r}]; "
                        "from bot.cli import main; sys.exit(main(['runs']))")  # fmt: skip
                times[name].append(timed([sys.executable, "-S", "-c", code], env))
    for name, got in times.items():
        got.sort()
        p90 = got[int(0.9 * (len(got) - 1))]
        median = statistics.median(got)
        print(f"  {name:8} median {median * 1000:6.0f} ms  p90 {p90 * 1000:6.0f} ms")
    ratio = statistics.median(times["opsloop"]) / statistics.median(times["lean"])
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"opsloop runs / lean script: {ratio:.2f}x (target <= 2x: {verdict})")


if __name__ == "__main__":
    main()
