"""Probe: `serve` SIGKILLed and restarted at random moments while the CLI opens and
answers gates; at the end every gate has exactly one message in Slack, with buttons
while it is open and without once it is closed.

Gates are opened (`opsloop run`) and answered (`opsloop decide`) by other processes,
some while the bot is down. The kill comes after a random number of Slack calls, so it
lands between or in the middle of posts and edits. Every failure names the seed (the
kills depend on timing too, so a replay with OPSLOOP_PROBE_SEED=N draws the same choices
but may land elsewhere).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.polling import until
from tests.sample_workflows import GATED
from tests.serve_process import CHANNEL, ROOT, serving, stop
from tests.slack_double import Message, SlackDouble
from tests.test_slack_reconcile import buttons

ROUNDS = 2
SETTLE_S = 60.0


def opsloop(db_url: str, flows: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SLACK_", "OPSLOOP_"))}
    env.update(DATABASE_URL=db_url, OPSLOOP_WORKFLOWS=str(flows), OPSLOOP_USER="U0OPS")
    command = [sys.executable, "-m", "bot.cli", *args]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def gates(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT id, status FROM interaction")).all())


def every_message(slack: SlackDouble) -> list[Message]:
    top = slack.messages(CHANNEL)
    return [*top, *(m for parent in top for m in slack.thread(CHANNEL, parent.ts))]


def key(message: Message) -> str | None:
    """The outbox key the bot posted the message with (its metadata)."""
    return ((message.metadata or {}).get("event_payload") or {}).get("key")


def mismatches(slack: SlackDouble, engine: sa.Engine) -> list[str]:
    """What differs between the gates in the database and their messages in Slack."""
    messages = every_message(slack)
    wrong = []
    for iid, status in gates(engine).items():
        found = [m for m in messages if key(m) == f"gate:{iid}"]
        if len(found) != 1:
            wrong.append(f"{iid} ({status}) has {len(found)} messages")
        elif (status == "pending") != bool(buttons(found[0])):
            wrong.append(f"{iid} is {status}; buttons: {bool(buttons(found[0]))}")
    return wrong


@pytest.fixture
def seed() -> int:
    """OPSLOOP_PROBE_SEED, or a fresh one; a failure's report names it whatever failed."""
    return int(os.environ.get("OPSLOOP_PROBE_SEED") or random.randrange(1 << 30))


def test_after_random_kills_every_gate_has_one_message_that_matches_it(
    db_url: str, tmp_path: Path, seed: int
) -> None:
    print(f"seed {seed}")
    try:
        probe(db_url, tmp_path, seed)
    except BaseException as exc:
        exc.add_note(f"probe seed {seed} (replay: OPSLOOP_PROBE_SEED={seed}); logs in {tmp_path}")
        raise


def probe(db_url: str, tmp_path: Path, seed: int) -> None:
    """Two rounds of runs and answers with a kill each, then a last start that settles."""
    rng = random.Random(seed)
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "gated.yml").write_text(GATED)

    asked: set[str] = set()

    def act(engine: sa.Engine) -> list[subprocess.Popen[str]]:
        """Start a run, and answer a random open gate."""
        procs = [opsloop(db_url, flows, "run", "gated", "service=api")]
        open_ = sorted(i for i, s in gates(engine).items() if s == "pending" and i not in asked)
        if open_ and (rng.random() < 0.7 or not asked):  # answer one at least: both kinds
            iid, answer = rng.choice(open_), rng.choice(["approve", "reject"])
            asked.add(iid)
            procs.append(opsloop(db_url, flows, "decide", iid, answer, "--as", "U0BOSS"))
        return procs

    def finish(procs: list[subprocess.Popen[str]]) -> None:
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode in (0, 1), err  # 1: the run failed (a gate was rejected)

    with SlackDouble() as slack:
        for n in range(ROUNDS):
            with serving(slack, db_url, flows, tmp_path / f"bot-{n}.log") as served:
                procs = act(served.engine) + act(served.engine)
                target = len(slack.calls()) + rng.randint(1, 8)
                done = lambda: all(p.poll() is not None for p in procs)  # noqa: B023, E731
                until(lambda: len(slack.calls()) >= target or done(),  # noqa: B023
                      timeout=60, what="some Slack calls")  # fmt: skip
                assert stop(served.process, signal.SIGKILL) == -signal.SIGKILL
                finish(procs)
                finish(act(served.engine))  # while no bot runs

        with serving(slack, db_url, flows, tmp_path / "bot-last.log") as served:
            try:
                until(lambda: not mismatches(slack, served.engine), timeout=SETTLE_S)
            except AssertionError:
                raise AssertionError(mismatches(slack, served.engine)) from None
            statuses = Counter(gates(served.engine).values())
            assert statuses["pending"] and len(statuses) > 1, statuses  # both kinds were probed
