"""Benchmark: how soon a change made outside `serve` shows in Slack (issue 11, "every
change reaches Slack, whoever made it").

`opsloop serve` (Socket Mode, a real process) runs against the Slack Web API double
(tests/slack_double.py). `opsloop run` and `opsloop decide` run as other real processes
on the same SQLite file, with no Slack token. Reported per question: from the commit
that opened it (`interaction.created_at`) to its gate message's `ts` in the double, and
from the commit of the answer (`answered_at`) to the moment this process saw the
message without buttons (polled every 10 ms). Both ends on this host's wall clock.
The bot reads the audit log every 0.5 s (bot/slack/reconciler.py POLL_S), so about
0.25 s on average plus the outbox's send is expected. Baseline: before this change,
neither happened at all.

    .venv/bin/python bench/slack_reconcile.py [--repeats 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # tests/slack_double.py imports `slack_limits`

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from orchestrator.queries import interaction  # noqa: E402
from tests.polling import until  # noqa: E402
from tests.sample_workflows import GATED  # noqa: E402
from tests.serve_process import CHANNEL, serving  # noqa: E402
from tests.slack_double import Message, SlackDouble  # noqa: E402
from tests.test_slack_reconcile import PROMPT, buttons, opsloop  # noqa: E402


def board_of(slack: SlackDouble, run_id: str) -> Message | None:
    return next((m for m in slack.messages(CHANNEL) if run_id in (m.text or "")), None)


def gate_in(slack: SlackDouble, thread: str) -> Message | None:
    return next((m for m in slack.thread(CHANNEL, thread) if PROMPT in json.dumps(m.blocks)), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    posted, edited = [], []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        flows = Path(tmp) / "workflows"
        flows.mkdir()
        (flows / "gated.yml").write_text(GATED)
        url = f"sqlite:///{Path(tmp) / 'opsloop.db'}"
        with SlackDouble() as slack, serving(slack, url, flows, Path(tmp) / "bot.log") as bot:
            for _ in range(args.repeats):
                run = opsloop(url, flows, "run", "gated", "service=api")
                iid = run["pending"][0]["id"]
                board = until(lambda r=run: board_of(slack, r["run_id"]))
                gate = until(lambda b=board: gate_in(slack, b.ts))
                asked = interaction(bot.engine, iid)
                assert asked is not None and asked.asked_at is not None
                posted.append(float(gate.ts) - asked.asked_at.timestamp())
                decide = (url, flows, "decide", iid, "approve", "--as", "U0BOSS")
                answer = threading.Thread(target=opsloop, args=decide)
                answer.start()

                def shown(b=board, g=gate) -> bool:  # type: ignore[no-untyped-def]
                    now = next(m for m in slack.thread(CHANNEL, b.ts) if m.ts == g.ts)
                    return not buttons(now)

                until(shown, timeout=60)
                seen = time.time()
                answer.join()
                answered = interaction(bot.engine, iid)
                assert answered is not None and answered.answered_at is not None
                edited.append(seen - answered.answered_at.timestamp())
    for name, values in (("question committed -> gate message posted", posted),
                         ("answer committed -> gate message edited", edited)):  # fmt: skip
        print(f"{name}: " + ", ".join(f"{v:.2f}" for v in values)
              + f" s (median {statistics.median(values):.2f}, max {max(values):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
