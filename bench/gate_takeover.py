"""Benchmark: how late a question's deadline is applied when the process that opened it
is gone (issue 11: "a dead replica's open gates are taken over within 5 s").

A surviving replica (`opsloop serve --no-slack`, a real process) runs first. Then
`opsloop run` (another real process) starts a run that stops at a gate with a 6 s
deadline, and exits: the process that opened the question, and armed its deadline, is
gone. The bench reads, from the database, how long after the deadline the survivor
applied it (`answered_at - deadline`, both written by processes on this host's clock).
Each database gets REPEATS questions in a row, against two code trees in the same run:
the baseline (default /work/main: the survivor learns of other processes' questions at
its 30 s sweep) and this tree (it reads the audit log every second).

    .venv/bin/python bench/gate_takeover.py [--baseline /work/main] [--repeats 3]
        [--skip-postgres] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from _databases import database_url  # noqa: E402

from storage.engine import create_engine  # noqa: E402
from storage.models import Interaction  # noqa: E402

ASKED: sa.Table = Interaction.__table__  # type: ignore[attr-defined]

DEADLINE_S = 6
WORKFLOW = f"""
name: takeover
steps:
  - id: gate
    approval:
      message: "ok?"
      deadline: {DEADLINE_S}s
      on_deadline: reject
"""


def env_for(tree: Path, url: str, flows: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSLOOP_"))}
    env.update(DATABASE_URL=url, OPSLOOP_WORKFLOWS=str(flows), OPSLOOP_USER="U0BENCH",
               PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")  # fmt: skip
    return env


def wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return value


def lateness(tree: Path, kind: str, repeats: int) -> list[float]:
    """Seconds between each deadline and its application by the survivor."""
    late: list[float] = []
    with database_url(kind, prefix="bench-takeover-") as url, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        flows = Path(tmp) / "workflows"
        flows.mkdir()
        (flows / "takeover.yml").write_text(WORKFLOW)
        env = env_for(tree, url, flows)
        cli = [sys.executable, "-m", "bot.cli"]
        subprocess.run([*cli, "db", "upgrade"], env=env, cwd=tree, check=True,
                       capture_output=True)  # fmt: skip
        log = Path(tmp) / "survivor.log"
        with log.open("wb") as out:
            survivor = subprocess.Popen([*cli, "serve", "--no-slack"], env=env, cwd=tree,
                                        stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        engine = create_engine(url)
        try:
            wait_for(lambda: b"serving" in log.read_bytes(), 120, "the survivor to start")
            for _ in range(repeats):
                run = subprocess.run([*cli, "run", "takeover", "--json"], env=env, cwd=tree,
                                     capture_output=True, text=True, check=True)  # fmt: skip
                run_id = json.loads(run.stdout)["run_id"]

                def applied(run_id: str = run_id) -> sa.Row | None:
                    with engine.connect() as conn:
                        return conn.execute(
                            sa.select(ASKED.c.answered_at, ASKED.c.deadline).where(
                                ASKED.c.run_id == run_id, ASKED.c.status != "pending"
                            )
                        ).first()

                row = wait_for(applied, DEADLINE_S + 90, "the deadline to be applied")
                answered, due = row
                late.append((answered - due).total_seconds())
        finally:
            survivor.send_signal(signal.SIGTERM)
            survivor.wait(30)
            engine.dispose()
    return late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="/work/main", help="the tree to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    results = {}
    for kind in kinds:
        for name, tree in (("baseline", Path(args.baseline)), ("this", ROOT)):
            late = lateness(tree, kind, args.repeats)
            results[f"{kind}/{name}"] = late
            print(f"{kind:8} {name:8} late by (s): " + ", ".join(f"{x:.2f}" for x in late)
                  + f"  max {max(late):.2f}  median {statistics.median(late):.2f}",
                  flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
