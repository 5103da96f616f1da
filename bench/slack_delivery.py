"""Benchmark the outbox's delivery to Slack against the Web API double, in one run:

- pace: `--posts` (default 30) posts to one channel at `--rate` posts/s (default 5) take how
  long, against the ideal N / rate (target <= 1.1x); the old pacer's schedule (the k-th post
  in a row waited k/rate, never crediting refilled tokens) is given beside it, computed;
- fairness: one channel has 50 posts queued; a post to another channel is queued: seconds
  until the double has it (target <= 0.5 s), against the same post into an empty outbox;
- Retry-After: one channel's first post is answered 429 with Retry-After: 30; seconds until
  another channel's post reaches the double (target <= 0.5 s);
- coalescing: a board is posted, then 50 threads each ask for an edit of it at once (50
  parallel steps finishing): how many chat.update calls the double gets.

Databases: a SQLite file, and a PostgreSQL schema unless --skip-postgres. Run from the root:

    .venv/bin/python bench/slack_delivery.py [--skip-postgres] [--rate 5 --posts 30]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # tests/slack_double.py imports `slack_limits`

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from bench._databases import database_url  # noqa: E402
from bot.slack.delivery import SlackDelivery, delivery_client  # noqa: E402
from bot.slack.dispatcher import Dispatcher  # noqa: E402
from bot.slack.outbox import Outbox  # noqa: E402
from bot.slack.pacing import ChannelPacer  # noqa: E402
from orchestrator.protocol import RunView  # noqa: E402
from storage.engine import create_engine  # noqa: E402
from storage.schema import setup  # noqa: E402
from tests.slack_double import SlackDouble  # noqa: E402


def _run(run_id: str) -> RunView:
    return RunView(id=run_id, workflow="deploy", status="running", params={},
                   started_by="U0ALICE", channel="C0BOARD")  # fmt: skip


@contextmanager
def _dispatching(url: str, slack: SlackDouble, rate: float) -> Iterator[Outbox]:
    engine = create_engine(url)
    setup(engine)
    outbox = Outbox(engine)
    client = delivery_client(slack.token, slack.api_url)
    dispatcher = Dispatcher(outbox, SlackDelivery(client, _run, lambda iid: None),
                            pacer=ChannelPacer(per_second=rate), poll_s=0.05)  # fmt: skip
    dispatcher.start()
    try:
        yield outbox
    finally:
        dispatcher.stop()
        engine.dispose()


def _paused(outbox: Outbox, key: str, channel: str) -> None:
    outbox.post(key, "schedule.paused", channel=channel, run_id=None,
                payload={"schedule_id": key, "reason": "bench"})  # fmt: skip


def _until(condition: Callable[[], object], timeout: float = 120.0) -> float:
    """Seconds until `condition()` holds (polled every 5 ms)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the double never got it")
        time.sleep(0.005)
    return time.monotonic() - start


def pace(url: str, posts: int, rate: float) -> dict[str, float]:
    with SlackDouble() as slack, _dispatching(url, slack, rate) as outbox:
        start = time.monotonic()
        for n in range(posts):
            _paused(outbox, f"pace:{n}", "C0PACE")
        _until(lambda: len(slack.messages("C0PACE")) == posts)
        took = time.monotonic() - start
    ideal = posts / rate
    old = sum(k / rate for k in range(1, posts - 5 + 1))  # burst of 5, then 1, 2, 3 ... s
    return {"took_s": took, "ideal_s": ideal, "ratio": took / ideal, "old_pacer_s": old}


def fairness(url: str, rate: float, hold_429: bool) -> dict[str, float]:
    with SlackDouble() as slack, _dispatching(url, slack, rate) as outbox:
        _paused(outbox, "alone", "C0ALONE")
        alone = _until(lambda: slack.messages("C0ALONE"))
        if hold_429:
            slack.fail_next("chat.postMessage", status=429, retry_after=30)
            _paused(outbox, "held", "C0BUSY")
            _until(lambda: slack.calls("chat.postMessage", ok=False))
        else:
            for n in range(50):
                _paused(outbox, f"busy:{n}", "C0BUSY")
            _until(lambda: slack.messages("C0BUSY"))
        _paused(outbox, "quiet", "C0QUIET")
        quiet = _until(lambda: slack.messages("C0QUIET"))
    return {"quiet_s": quiet, "alone_s": alone}


def coalescing(url: str, edits: int = 50) -> dict[str, float]:
    with SlackDouble() as slack, _dispatching(url, slack, 1.0) as outbox:
        outbox.post("board:r1", "board.post", channel="C0BOARD", run_id="r1")
        _until(lambda: slack.messages("C0BOARD"))
        go = threading.Barrier(edits)

        def edit() -> None:
            go.wait()
            outbox.edit("board-edit:r1", "board.update", channel="C0BOARD", run_id="r1",
                        after="board:r1")  # fmt: skip

        threads = [threading.Thread(target=edit) for _ in range(edits)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _until(lambda: outbox.counts().get("pending", 0) == 0
               and outbox.counts().get("sending", 0) == 0)  # fmt: skip
    return {"asked": edits, "chat_update_calls": len(slack.calls("chat.update"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--skip-postgres", action="store_true")
    args, _ = parser.parse_known_args()
    for kind in ("sqlite",) if args.skip_postgres else ("sqlite", "postgres"):
        with database_url(kind) as url:
            p = pace(url, args.posts, args.rate)
            print(f"[{kind}] pace: {args.posts} posts at {args.rate}/s took {p['took_s']:.2f} s, "
                  f"ideal {p['ideal_s']:.2f} s -> {p['ratio']:.3f}x (target <= 1.1x); "
                  f"old pacer: {p['old_pacer_s']:.0f} s")  # fmt: skip
        for label, held in (("50 queued", False), ("30 s Retry-After", True)):
            with database_url(kind) as url:
                f = fairness(url, args.rate, held)
            print(f"[{kind}] other channel while one has {label}: {f['quiet_s']:.3f} s "
                  f"(alone {f['alone_s']:.3f} s; target <= 0.5 s)")  # fmt: skip
        with database_url(kind) as url:
            c = coalescing(url)
        print(f"[{kind}] {c['asked']} edits of one board at once -> "
              f"{c['chat_update_calls']} chat.update call(s)")  # fmt: skip


if __name__ == "__main__":
    main()
