"""Idle CPU of a real `opsloop serve` with 1,000 runs waiting at a gate, on PostgreSQL.

`bench/waiting_side_by_side.py` measures a bare Orchestrator; this measures the process
users run, with everything that polls in it: `serve --no-slack`, and `serve` in Socket
Mode against the Slack double (tests/slack_double.py: a real HTTP and WebSocket server),
which adds the reconciler, the outbox dispatcher and the socket (a first `serve` posts
every board and gate message, fast, and stops: what is measured is the steady state).
Each round populates a fresh PostgreSQL schema with `--waiting` runs (bench/
_waiting_runs.py), starts the process, lets it settle, then reads the CPU it uses over
`--idle` seconds: the process (all threads, /proc/PID/stat) and the PostgreSQL backends
serving it (found by `application_name`), as % of one core. `--code` checkouts are measured in turn,
interleaved round by round (the machine is shared); medians are printed.

    .venv/bin/python bench/idle_serve.py [--waiting 1000] [--idle 60] [--rounds 3]
        [--code /work/wt-base-x --code .] [--modes no-slack,slack]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]
sys.path.append(str(BENCH.parent / "tests"))  # tests/slack_double.py imports `slack_limits`

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from _databases import database_url  # noqa: E402
from _waiting_runs import WORKFLOW, populate  # noqa: E402
from waiting_side_by_side import backend_cpu  # noqa: E402

from storage.engine import create_engine  # noqa: E402
from tests.polling import until  # noqa: E402
from tests.serve_process import CHANNEL  # noqa: E402
from tests.slack_double import SlackDouble  # noqa: E402

SETTLE_S = 40.0  # after start: recovery, first loads, the start-up sweeps (1,000 runs)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(code: Path, mode: str, args: argparse.Namespace) -> dict[str, float]:
    with database_url("postgres", "bench-idle-") as url, tempfile.TemporaryDirectory() as tmp:
        populate(url, args.waiting, code=code)
        flows = Path(tmp) / "workflows"
        flows.mkdir()
        (flows / "waiting.yaml").write_text(WORKFLOW)
        app = f"bench-idle-{uuid.uuid4().hex[:6]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSLOOP_"))}
        env.update(DATABASE_URL=f"{url}&application_name={app}", OPSLOOP_WORKFLOWS=str(flows),
                   PYTHONPATH=os.pathsep.join([str(code), str(BENCH)]),
                   PYTHONUNBUFFERED="1")  # fmt: skip
        with SlackDouble() as slack:
            if mode == "slack":
                env.update(SLACK_BOT_TOKEN=slack.token, SLACK_APP_TOKEN=slack.app_token,
                           SLACK_API_URL=slack.api_url, OPSLOOP_CHANNEL=CHANNEL)  # fmt: skip
                # Steady state: every board and gate message already in Slack. A first
                # serve posts them (fast pacing), the measured one starts after it.
                with serve(code, mode, {**env, "OPSLOOP_SLACK_POSTS_PER_SECOND": "1000"},
                           Path(tmp) / "warm.log", slack):  # fmt: skip
                    until(lambda: unsent(url) == 0, timeout=600, what="every message sent")
            with serve(code, mode, env, Path(tmp) / "serve.log", slack) as proc:
                time.sleep(args.settle)
                before, pg_before = process_cpu(proc.pid), backend_cpu(app)
                time.sleep(args.idle)
                used, pg_after = process_cpu(proc.pid) - before, backend_cpu(app)
    pg = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items())
    return {"cpu_pct": used / args.idle * 100, "pg_cpu_pct": pg / args.idle * 100}


def unsent(url: str) -> int:
    """Outbox rows not sent yet (none before the bot made its first pass: -1)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            total, left = conn.execute(sa.text(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'sending')) "
                "FROM outbox")).one()  # fmt: skip
    finally:
        engine.dispose()
    return left if total else -1


@contextmanager
def serve(
    code: Path, mode: str, env: dict[str, str], log: Path, slack: SlackDouble
) -> Iterator[subprocess.Popen[bytes]]:
    """`opsloop serve` of checkout `code`, up (connected to the double in Slack mode)."""
    argv = [sys.executable, "-m", "bot.cli", "serve", *(["--no-slack"] if mode != "slack" else [])]
    until(lambda: slack.socket_connections() == 0, timeout=60, what="the last serve to leave")
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        if mode == "slack":
            until(lambda: slack.socket_connections() or proc.poll() is not None,
                  timeout=120, what="serve to connect")  # fmt: skip
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        yield proc
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append")
    parser.add_argument("--modes", default="no-slack,slack")
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_S,
        help="seconds after start before measuring (start-up work ends)",
    )
    args = parser.parse_args()
    codes = [c.resolve() for c in (args.code or [BENCH.parent])]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for n in range(args.rounds):
        for mode in args.modes.split(","):
            for code in codes:
                got = one_round(code, mode, args)
                results.setdefault((str(code), mode), []).append(got)
                load = os.getloadavg()[0]
                print(f"round {n + 1} {mode:8} {code}: {got['cpu_pct']:.2f} % process, "
                      f"{got['pg_cpu_pct']:.2f} % PostgreSQL (load {load:.1f})",
                      flush=True)  # fmt: skip
    print(f"\n{args.waiting} waiting runs, {args.idle:g} s idle, median of {args.rounds} rounds")
    print("| code | mode | idle CPU % (process) | idle CPU % (its PostgreSQL backends) |")
    print("|---|---|---|---|")
    for (code, mode), rows in results.items():
        cpu = statistics.median(r["cpu_pct"] for r in rows)
        pg = statistics.median(r["pg_cpu_pct"] for r in rows)
        print(f"| {code} | {mode} | {cpu:.2f} | {pg:.2f} |")


if __name__ == "__main__":
    main()


__all__: list[Any] = []
