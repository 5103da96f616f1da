"""Benchmark how fast the Slack bot acks under load, against a bare Bolt app, and how soon a
click on Approve starts the step after the gate.

Three processes, so that neither Slack nor the people clicking share the bot's GIL:

- this one serves the bot (`running_bot`: orchestrator, outbox, Bolt app) and, beside it,
  a bare Bolt `App` whose listeners only call `ack()` (same signing secret, same WebClient
  pointing at the double, `process_before_response=False`, Bolt's default listener pool),
  each behind its own waitress server on 127.0.0.1 with the bot's thread count;
- "slack": the Slack Web API double (tests/slack_double.py), which the bot posts to and
  whose response_urls take the bot's replies;
- "users": signs requests like Slack does (tests/slack_signing.py) and sends them with
  `--in-flight` (default 50) urllib requests at once from a thread pool.

Ack latency (`--repeat` times, default 3; each time the bare app first, then the bot, with
the same request bodies in the same shuffled order): `--runs` `/ops run gated service=api`
commands that each start a real run (in a channel of its own), `--statuses` `/ops status`,
and `--clicks` clicks on Approve, each on its own gate message as the double holds it (the
gates are opened beforehand by runs of `gated`, each in its own channel: the bot posts at
most ~1 message/s per channel). Latency is from just before the request is sent to its
response read, in the users process; p50 / p99 per kind and over all. After the bot's burst
the bench waits until every clicked run finished, every started run waits at its gate and
the outbox is drained, so one repetition's backlog does not slow the next.
Targets: the bot's p99 < 100 ms and <= 1.5x the bare app's p99.

Click to next step: `--gates` (default 100) gates approved one at a time (the next click
waits for the previous step): from just before the click is sent (users process, wall
clock) to the `after` step's Python function starting (bench/slack_tasks.py stamps it).
The same interval is also reported for the burst's clicks ("under load").

The bot holds its follow-up work (the runs, answers and replies the requests ask for) while
requests are being answered (`AcksFirst` in bot/slack/http_transport.py); `--no-acks-first` turns
that off (MAX_DELAY_S = 0) to show what it saves. `running_bot` also keeps the objects
start-up built out of the cyclic GC (`gc.freeze()`); `--no-gc-freeze` undoes that.
Reported beside the latencies: the CPU seconds each thread group of this process used
during the bot's bursts (from /proc, Linux only), and this process's CPU from the start of
a burst until everything settled.

Databases: a SQLite file in a temp dir; PostgreSQL (127.0.0.1:5432, database `test`, user
`postgres`, a fresh schema selected with `options=-csearch_path=...`, dropped at the end)
unless --skip-postgres. The double's own latency (chat.postMessage from a WebClient here)
and the CPU each process used during the bursts are reported to show who is busy.

Run from the repository root:

    .venv/bin/python bench/slack_ack.py
    .venv/bin/python bench/slack_ack.py --skip-postgres --repeat 1 --json out.json
    .venv/bin/python bench/slack_ack.py --no-acks-first --no-gc-freeze   # as before both

Unknown options (e.g. bench/checkpointer.py's --runs, when run by `./dev bench`) are ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # the workflow names its task `slack_tasks:stamp`
sys.path.append(str(ROOT / "tests"))  # tests/slack_double.py imports `slack_limits`

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import slack_tasks  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from slack_bolt import Ack, App  # noqa: E402
from slack_bolt.adapter.wsgi import SlackRequestHandler  # noqa: E402

from bench._databases import database_url  # noqa: E402
from bot.settings import Settings, SlackSettings  # noqa: E402
from bot.slack import http_transport, ids  # noqa: E402
from bot.slack.delivery import web_client  # noqa: E402
from bot.slack.http_transport import http_in_background  # noqa: E402
from bot.slack.scopes import SLASH_COMMAND  # noqa: E402
from bot.slack.server import Bot, running_bot  # noqa: E402
from tests.slack_double import SlackDouble  # noqa: E402
from tests.slack_signing import (  # noqa: E402
    SIGNING_SECRET,
    action_from_blocks,
    block_actions,
    post_signed,
    slash_command,
)

TOKEN = "xoxb-bench-token"
STARTER, APPROVER = "U0ALICE", "U0BOSS"
P99_TARGET_MS = 100.0
RATIO_TARGET = 1.5
KINDS = ("/ops run", "/ops status", "approve click")
WORKLOAD = ("in_flight", "runs", "statuses", "clicks", "gates", "repeat")
SETTLE_TIMEOUT_S = 300.0

GATED = f"""
name: gated
params:
  service: {{type: choice, choices: [api, web], required: true}}
steps:
  - id: approve
    approval:
      message: "Ship {{{{ params.service }}}}?"
      approvers: {{users: [{APPROVER}]}}
  - id: after
    needs: approve
    python: slack_tasks:stamp
"""


# -- the "slack" process: the Web API double ----------------------------------------------

_double: SlackDouble | None = None


def slack_start() -> str:
    """Start the double in this (child) process; its base URL."""
    global _double
    _double = SlackDouble(token=TOKEN).start()
    return _double.url


def slack_stop() -> None:
    if _double is not None:
        _double.stop()


def slack_cpu() -> float:
    return time.process_time()


def slack_gates(channels: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The gate message (ts, blocks) the bot posted in each channel, once all are there."""
    assert _double is not None
    wanted, found, seen = set(channels), {}, [0]

    def ready(calls: list[Any]) -> bool:
        for call in calls[seen[0] :]:
            channel = call.response.get("channel")
            if call.ok and call.method == "chat.postMessage" and channel in wanted:
                blocks = call.params.get("blocks") or []
                if any(b.get("block_id", "").startswith(ids.GATE_BLOCK_PREFIX) for b in blocks):
                    found[channel] = call.response["ts"]
        seen[0] = len(calls)
        return len(found) == len(wanted)

    _double.wait_for(ready, timeout=timeout, what=f"{len(wanted)} gate messages")
    out = {}
    for channel, ts in found.items():
        message = _double.message(channel, ts)  # as it is now
        out[channel] = {"ts": ts, "blocks": message.blocks, "text": message.text}
    return out


# -- the "users" process: signed requests, many in flight ---------------------------------


def users_fire(
    url: str, requests: list[tuple[str, str]], in_flight: int
) -> list[tuple[str, float, float, int]]:
    """Send every (kind, body) signed, `in_flight` at a time: (kind, sent at, ms, status) each,
    in order. Plain tuples: this runs in a spawned process, whose classes do not unpickle."""

    def send(item: tuple[str, str]) -> tuple[str, float, float, int]:
        kind, body = item
        sent, start = time.time(), time.perf_counter()
        try:
            status, _text = post_signed(url, body, timeout=30.0)
        except (urllib.error.URLError, OSError):
            status = 0
        return kind, sent, (time.perf_counter() - start) * 1000, status

    with ThreadPoolExecutor(in_flight, thread_name_prefix="user") as pool:
        return list(pool.map(send, requests))


@dataclass(frozen=True)
class Sample:
    kind: str
    sent: float  # time.time() just before sending
    ms: float  # until the response was read
    status: int


# -- servers ---------------------------------------------------------------------------------


def bare_app(client: Any) -> App:
    """Bolt with listeners that only ack: the floor for the bot's ack latency."""
    app = App(
        client=client,
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
        process_before_response=False,
    )

    @app.command(SLASH_COMMAND)
    def on_ops(ack: Ack) -> None:
        ack()

    @app.action(re.compile(r"^opsloop\."))
    def on_click(ack: Ack) -> None:
        ack()

    return app


@contextlib.contextmanager
def served(wsgi: Callable[..., Any], threads: int) -> Iterator[str]:
    """`wsgi` behind waitress on 127.0.0.1 (as `opsloop serve` runs it); the events URL."""
    with http_in_background(wsgi, threads=threads) as url:
        yield url


# -- one database: the bot, the bare app, the bursts ---------------------------------------


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process (Linux /proc), by native id, with
    the thread's name less its number (`opsloop-bot_3` -> `opsloop-bot`)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = re.sub(r"([-_]\d+)+$", "", thread.name)
        out[thread.native_id] = (group, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    groups: dict[str, float] = {}
    for tid, (group, cpu) in after.items():
        groups[group] = groups.get(group, 0.0) + cpu - before.get(tid, (group, 0.0))[1]
    return {g: round(v, 3) for g, v in sorted(groups.items(), key=lambda gv: -gv[1]) if v > 0}


@dataclass
class Burst:
    app: str  # "bot" or "bare"
    samples: list[Sample]
    wall_s: float
    cpu_s: dict[str, float]  # process -> CPU seconds used during the burst
    threads_cpu_s: dict[str, float]  # thread group of this process -> CPU seconds

    def ms(self, kind: str | None = None) -> list[float]:
        return sorted(s.ms for s in self.samples if kind is None or s.kind == kind)

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)


@dataclass
class DatabaseResult:
    database: str
    bursts: list[tuple[Burst, Burst]] = field(default_factory=list)  # (bare, bot) per repeat
    under_load_ms: list[float] = field(default_factory=list)  # click -> step, burst clicks
    resume_ms: list[float] = field(default_factory=list)  # click -> step, one at a time
    idle_click_ack_ms: list[float] = field(default_factory=list)
    double_ms: list[float] = field(default_factory=list)  # chat.postMessage round trips
    settled: list[tuple[float, float]] = field(default_factory=list)  # (wall s, CPU s) per
    # repeat, this process, from the start of the bot's burst until everything settled


@dataclass(frozen=True)
class Gate:
    run_id: str
    channel: str
    body: str  # the signed-to-be click on its Approve button


class Bench:
    """One database: the bot and the bare app served side by side, the bursts, the resumes."""

    def __init__(self, kind: str, args: argparse.Namespace, slack: Any, users: Any) -> None:
        self.kind, self.args, self.slack, self.users = kind, args, slack, users
        self.result = DatabaseResult(kind)
        self.slack_url = ""
        self.bot: Bot | None = None
        self.expected_runs = 0
        self._channels = (f"C0{kind[:2].upper()}{n:06d}" for n in range(1, 10**6))

    def run(self) -> DatabaseResult:
        self.slack_url = self.slack.submit(slack_start).result()
        try:
            with tempfile.TemporaryDirectory(prefix="bench-slack-") as flows, \
                    database_url(self.kind) as url:  # fmt: skip
                (Path(flows) / "gated.yml").write_text(GATED)
                self._serve(Settings(database_url=url, workflows_dir=Path(flows), user="bench"))
        finally:
            self.slack.submit(slack_stop).result()
        return self.result

    def _serve(self, settings: Settings) -> None:
        args = self.args
        slack_settings = SlackSettings(
            bot_token=TOKEN, signing_secret=SIGNING_SECRET, app_token=None,
            api_url=self.slack_url + "/api/", channel=None, host="127.0.0.1", port=0,
        )  # fmt: skip
        client = web_client(TOKEN, slack_settings.api_url)
        self.result.double_ms = self._double_latency(client)
        threads = slack_settings.threads  # what `opsloop serve` gives waitress
        with running_bot(settings, slack_settings) as bot, \
                served(bot.wsgi, threads) as bot_url, \
                served(SlackRequestHandler(bare_app(client)), threads) as bare_url:  # fmt: skip
            self.bot = bot
            if args.no_gc_freeze:
                gc.unfreeze()
            self._warm_up(bot_url, bare_url)
            for rep in range(args.repeat):
                print(f"  {self.kind}: repeat {rep + 1}/{args.repeat}", flush=True)
                self.result.bursts.append(self._repeat(rep, bot_url, bare_url))
            print(f"  {self.kind}: {args.gates} clicks one at a time", flush=True)
            self._resume(bot_url)

    @staticmethod
    def _double_latency(client: Any, n: int = 200) -> list[float]:
        """chat.postMessage round trips from here: what one Slack call costs the bot."""
        out = []
        for _ in range(n):
            start = time.perf_counter()
            client.chat_postMessage(channel="C0PROBE", text="probe")
            out.append((time.perf_counter() - start) * 1000)
        return sorted(out)

    def _warm_up(self, bot_url: str, bare_url: str) -> None:
        """Untimed: Bolt's first auth.test, lazy imports, connection pools, the first runs."""
        gates = self._open_gates(5)
        requests = [*self._commands(5, 5), *(("approve click", g.body) for g in gates)]
        for url in (bare_url, bot_url):
            bad = [s for s in self._fire(url, requests, 1) if s.status != 200]
            assert not bad, f"warm-up requests to {url} failed: {bad}"
        self._settle([g.run_id for g in gates], new_runs=5)

    # -- requests --

    def _commands(self, runs: int, statuses: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(runs):
            channel = next(self._channels)
            body = slash_command("run gated service=api", user_id=STARTER, channel_id=channel,
                                 response_url=f"{self.slack_url}/response/{channel}")  # fmt: skip
            out.append(("/ops run", body))
        for n in range(statuses):
            body = slash_command("status", user_id=STARTER, channel_id="C0STATUS",
                                 response_url=f"{self.slack_url}/response/status-{n}")  # fmt: skip
            out.append(("/ops status", body))
        return out

    def _open_gates(self, n: int) -> list[Gate]:
        """Start `n` gated runs, each in its own channel; wait for their gate messages and
        build a click on each one's Approve button from the blocks the double holds."""
        assert self.bot is not None
        run_ids = {}
        for _ in range(n):
            channel = next(self._channels)
            run_ids[channel] = self.bot.orch.start_run(
                "gated", {"service": "web"}, started_by=STARTER, front_end="slack",
                channel=channel,
            )  # fmt: skip
        self.expected_runs += n
        shown = self.slack.submit(slack_gates, list(run_ids), SETTLE_TIMEOUT_S).result()
        gates = []
        for channel, run_id in run_ids.items():
            gate = shown[channel]
            body = block_actions(
                [action_from_blocks(gate["blocks"], ids.APPROVE)], user_id=APPROVER,
                channel_id=channel, message_ts=gate["ts"],
                message={"ts": gate["ts"], "text": gate["text"], "blocks": gate["blocks"]},
                response_url=f"{self.slack_url}/response/click-{channel}",
            )  # fmt: skip
            gates.append(Gate(run_id, channel, body))
        self._settle([], 0)  # the boards' edits too: start every burst from quiet
        return gates

    def _fire(self, url: str, requests: list[tuple[str, str]], in_flight: int) -> list[Sample]:
        rows = self.users.submit(users_fire, url, requests, in_flight).result()
        return [Sample(*row) for row in rows]

    # -- one repetition --

    def _repeat(self, rep: int, bot_url: str, bare_url: str) -> tuple[Burst, Burst]:
        args = self.args
        start = time.perf_counter()
        gates = self._open_gates(args.clicks)
        print(f"    opened {len(gates)} gates in {time.perf_counter() - start:.1f} s", flush=True)
        requests = [
            *self._commands(args.runs, args.statuses),
            *(("approve click", g.body) for g in gates),
        ]
        random.Random(rep).shuffle(requests)
        bare = self._burst("bare", bare_url, requests)
        wall, cpu = time.perf_counter(), time.process_time()
        bot = self._burst("bot", bot_url, requests)
        started = self._settle([g.run_id for g in gates], new_runs=args.runs)
        self.result.settled.append((time.perf_counter() - wall, time.process_time() - cpu))
        run_of = {g.body: g.run_id for g in gates}
        self.result.under_load_ms += [
            (started[run_of[body]] - s.sent) * 1000
            for s, (kind, body) in zip(bot.samples, requests, strict=True)
            if kind == "approve click"
        ]
        for burst in (bare, bot):
            used = ", ".join(f"{k} {v:.2f} s" for k, v in burst.cpu_s.items())
            print(f"    {burst.app}: {len(burst.samples)} requests in {burst.wall_s:.2f} s, "
                  f"p50 {pct(burst.ms(), 50):.1f} ms, p99 {pct(burst.ms(), 99):.1f} ms, "
                  f"{burst.errors} errors; cpu {used}", flush=True)  # fmt: skip
        return bare, bot

    def _burst(self, app: str, url: str, requests: list[tuple[str, str]]) -> Burst:
        cpu, threads = self._cpu(), thread_cpu()
        start = time.perf_counter()
        samples = self._fire(url, requests, self.args.in_flight)
        wall = time.perf_counter() - start
        after, threads_after = self._cpu(), thread_cpu()
        return Burst(app, samples, wall, {k: after[k] - cpu[k] for k in cpu},
                     thread_cpu_delta(threads, threads_after))  # fmt: skip

    def _cpu(self) -> dict[str, float]:
        return {"bench": time.process_time(), "slack": self.slack.submit(slack_cpu).result()}

    def _settle(
        self, clicked_runs: list[str], new_runs: int = 0, *, drain: bool = True
    ) -> dict[str, float]:
        """Wait until the clicked runs' `after` steps ran and the runs finished, `new_runs`
        more runs exist, nothing is running and (with `drain`) the outbox is empty.
        Returns when each clicked run's `after` step started."""
        assert self.bot is not None
        started = slack_tasks.wait_started(clicked_runs, SETTLE_TIMEOUT_S)
        self.expected_runs += new_runs
        engine, outbox = self.bot.orch.engine, self.bot.outbox
        query = sa.text(
            "SELECT count(*), sum(CASE WHEN status IN ('pending', 'running') THEN 1 ELSE 0 END) "
            "FROM workflow_run"
        )
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            with engine.connect() as conn:
                total, busy = conn.execute(query).one()
            counts = outbox.counts() if drain else {}
            if total == self.expected_runs and not busy and set(counts) <= {"sent"}:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not settled: {total}/{self.expected_runs} runs, "
                                   f"{busy} busy, outbox {counts}")  # fmt: skip
            time.sleep(0.05)
        for run_id in clicked_runs:
            run = self.bot.orch.view(run_id)
            if run.status != "succeeded":
                raise RuntimeError(f"run {run_id} ended {run.status}: {run.error}")
        return started

    # -- click to next step, one at a time --

    def _resume(self, bot_url: str) -> None:
        warm = 3
        for n, gate in enumerate(self._open_gates(self.args.gates + warm)):
            [sample] = self._fire(bot_url, [("approve click", gate.body)], 1)
            assert sample.status == 200, sample
            # Not drained: the run's coalesced board edits go out while the next click runs.
            at = self._settle([gate.run_id], drain=False)[gate.run_id]
            if n >= warm:
                self.result.resume_ms.append((at - sample.sent) * 1000)
                self.result.idle_click_ack_ms.append(sample.ms)


# -- report -----------------------------------------------------------------------------------


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def summary(result: DatabaseResult) -> list[dict[str, Any]]:
    """Per kind (and over all): the median over repeats of each app's p50 and p99."""
    rows = []
    for kind in (*KINDS, None):
        row: dict[str, Any] = {"database": result.database, "kind": kind or "all"}
        for n, app in enumerate(("bare", "bot")):
            p50s = [pct(pair[n].ms(kind), 50) for pair in result.bursts]
            p99s = [pct(pair[n].ms(kind), 99) for pair in result.bursts]
            row[f"{app}_p50_ms"] = statistics.median(p50s)
            row[f"{app}_p99_ms"] = statistics.median(p99s)
            row[f"{app}_p99_each_ms"] = p99s
        row["p99_ratio"] = row["bot_p99_ms"] / row["bare_p99_ms"]
        row["pass"] = row["bot_p99_ms"] < P99_TARGET_MS and row["p99_ratio"] <= RATIO_TARGET
        rows.append(row)
    return rows


def print_report(results: list[DatabaseResult], args: argparse.Namespace) -> None:
    held = "held while requests are answered" if not args.no_acks_first else "run at once"
    frozen = "frozen" if not args.no_gc_freeze else "not frozen"
    print(f"\nthe bot's follow-up work: {held}; start-up's objects: {frozen} (gc.freeze)")
    print(f"ack latency, {args.in_flight} requests in flight, median over {args.repeat} "
          f"repeats of p50 / p99 (each repeat: {args.runs} /ops run, {args.statuses} /ops "
          f"status, {args.clicks} approve clicks; same bodies to both apps)")  # fmt: skip
    header = (f"{'database':<9} {'kind':<14} {'bare p50':>9} {'bare p99':>9} {'bot p50':>9} "
              f"{'bot p99':>9} {'ratio':>6}  verdict  bot p99 per repeat")  # fmt: skip
    print(header)
    print("-" * len(header))
    for result in results:
        for r in summary(result):
            each = " / ".join(f"{v:.0f}" for v in r["bot_p99_each_ms"])
            cells = [f"{r[k]:>7.1f}ms" for k in ("bare_p50_ms", "bare_p99_ms", "bot_p50_ms",
                                                 "bot_p99_ms")]  # fmt: skip
            verdict = "PASS" if r["pass"] else "FAIL"
            print(f"{r['database']:<9} {r['kind']:<14} {' '.join(cells)} "
                  f"{r['p99_ratio']:>5.2f}x  {verdict:<7}  {each} ms")  # fmt: skip
    print(f"targets: bot p99 < {P99_TARGET_MS:.0f} ms and <= {RATIO_TARGET}x the bare app's p99")
    print("\nburst wall time and CPU seconds used meanwhile (median over repeats):")
    for result in results:
        for n, app in enumerate(("bare", "bot")):
            bursts = [pair[n] for pair in result.bursts]
            wall = statistics.median(b.wall_s for b in bursts)
            bench = statistics.median(b.cpu_s["bench"] for b in bursts)
            slack = statistics.median(b.cpu_s["slack"] for b in bursts)
            errors = sum(b.errors for b in bursts)
            print(f"  {result.database:<9} {app:<5} wall {wall:.2f} s, this process {bench:.2f} s,"
                  f" slack double {slack:.2f} s, non-200 answers {errors}")  # fmt: skip
            for rep, b in enumerate(bursts, 1):
                groups = ", ".join(f"{g} {v:.2f}" for g, v in b.threads_cpu_s.items() if v >= 0.01)
                print(f"  {'':<15} repeat {rep}, CPU s by thread: {groups or '-'}")
        walls, cpus = zip(*result.settled, strict=True)
        per = statistics.median(cpus) / (args.runs + args.statuses + args.clicks) * 1000
        print(f"  {result.database:<9} bot   from the burst's start until settled: wall "
              f"{statistics.median(walls):.2f} s, CPU {statistics.median(cpus):.2f} s "
              f"({per:.1f} ms per request)")  # fmt: skip
    print("\nclick on Approve -> the step after the gate starting:")
    for result in results:
        one, load = sorted(result.resume_ms), sorted(result.under_load_ms)
        acks, double = sorted(result.idle_click_ack_ms), result.double_ms
        print(f"  {result.database:<9} one at a time ({len(one)} gates): p50 {pct(one, 50):.1f} ms,"
              f" p99 {pct(one, 99):.1f} ms, max {one[-1]:.1f} ms; their acks p50 "
              f"{pct(acks, 50):.1f} ms, p99 {pct(acks, 99):.1f} ms")  # fmt: skip
        print(f"  {'':<9} under load ({len(load)} burst clicks): p50 {pct(load, 50):.1f} ms, "
              f"p99 {pct(load, 99):.1f} ms, max {load[-1]:.1f} ms")  # fmt: skip
        print(f"  {'':<9} the double: chat.postMessage from a WebClient p50 "
              f"{pct(double, 50):.2f} ms, p99 {pct(double, 99):.2f} ms")  # fmt: skip


def dist(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99), "max_ms": pct(v, 100)}


def to_json(results: list[DatabaseResult], args: argparse.Namespace) -> dict[str, Any]:
    def burst(b: Burst) -> dict[str, Any]:
        latency = {kind or "all": dist(b.ms(kind)) for kind in (*KINDS, None)}
        return {"app": b.app, "wall_s": b.wall_s, "cpu_s": b.cpu_s, "errors": b.errors,
                "threads_cpu_s": b.threads_cpu_s, "latency": latency}  # fmt: skip

    return {
        "workload": {k: getattr(args, k) for k in WORKLOAD},
        "acks_first": not args.no_acks_first,
        "gc_freeze": not args.no_gc_freeze,
        "targets": {"p99_ms": P99_TARGET_MS, "p99_ratio": RATIO_TARGET},
        "summary": [row for r in results for row in summary(r)],
        "databases": [
            {
                "database": r.database,
                "bursts": [[burst(bare), burst(bot)] for bare, bot in r.bursts],
                "click_to_next_step_one_at_a_time": dist(r.resume_ms),
                "click_to_next_step_under_load": dist(r.under_load_ms),
                "click_ack_one_at_a_time": dist(r.idle_click_ack_ms),
                "double_post_message": dist(r.double_ms),
                "bot_until_settled": [{"wall_s": w, "cpu_s": c} for w, c in r.settled],
            }
            for r in results
        ],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=50, help="requests at once (50)")
    parser.add_argument("--runs", type=int, default=100, help="/ops run per repeat (100)")
    parser.add_argument("--statuses", type=int, default=100, help="/ops status per repeat (100)")
    parser.add_argument("--clicks", type=int, default=200, help="approve clicks per repeat (200)")
    parser.add_argument("--gates", type=int, default=100, help="gates approved one at a time")
    parser.add_argument("--repeat", type=int, default=3, help="bursts per app and database (3)")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--no-acks-first",
        action="store_true",
        help="run the bot's follow-up work at once, beside the acks (MAX_DELAY_S = 0)",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="gc.unfreeze() once the bot has started: full collections scan everything",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"bench/slack_ack.py: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # waitress warns "Task queue depth is N" whenever all its threads are busy: by design here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if args.no_acks_first:
        http_transport.MAX_DELAY_S = 0.0
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no forked threads
    results = []
    with ProcessPoolExecutor(1, mp_context=spawn) as slack, \
            ProcessPoolExecutor(1, mp_context=spawn) as users:  # fmt: skip
        for kind in ["sqlite"] + ([] if args.skip_postgres else ["postgres"]):
            print(f"{kind}:", flush=True)
            results.append(Bench(kind, args, slack, users).run())
    print_report(results, args)
    if args.json:
        args.json.write_text(json.dumps(to_json(results, args), indent=2) + "\n")
        print(f"wrote {args.json}")
    errors = sum(b.errors for r in results for pair in r.bursts for b in pair)
    return 1 if errors else 0  # a missed target is a finding, not an error


if __name__ == "__main__":
    sys.exit(main())
