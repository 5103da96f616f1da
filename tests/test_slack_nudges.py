"""Reminders and escalations fired by a process without Slack reach Slack once.

`opsloop run` opens a gate, `serve --no-slack` (on a fast clock) wins the claims of its
reminders and its escalation and stops; then `serve` with Slack posts them from the
audit log: the latest reminder once (not one per period it missed) and the escalation
once, and a restart posts nothing again. All real processes against the Slack double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.polling import until
from tests.serve_process import CHANNEL, ROOT, Served, serving, serving_headless
from tests.slack_double import Message, SlackDouble

NAG = """
name: nag
steps:
  - id: approve
    approval:
      message: "Ship it?"
      approvers: {users: [U0BOSS]}
      remind_every: 1m
      escalate: {after: 2m, users: [U0LEAD]}
"""


def env_of(db_url: str, flows: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SLACK_", "OPSLOOP_"))}
    env.update(DATABASE_URL=db_url, OPSLOOP_WORKFLOWS=str(flows), OPSLOOP_USER="U0OPS",
               OPSLOOP_CHANNEL=CHANNEL, **more)  # fmt: skip
    return env


def audited(engine: sa.Engine, action: str) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM audit_log WHERE action = :a")
        return conn.execute(query, {"a": action}).scalar_one()


def thread(served: Served, run_id: str) -> list[Message]:
    board = served.board(run_id)
    return served.slack.thread(CHANNEL, board.ts)


def nudges(served: Served, run_id: str) -> tuple[int, int]:
    """Reminders and escalations in the run's thread."""
    texts = [m.text or "" for m in thread(served, run_id)]
    return sum(t.startswith("Reminder") for t in texts), sum(
        t.startswith("Escalation") for t in texts
    )


def test_reminders_and_escalations_fired_without_slack_are_posted_once(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "nag.yml").write_text(NAG)
    started = subprocess.run([sys.executable, "-m", "bot.cli", "run", "nag", "--json"],
                             env=env_of(db_url, flows), cwd=ROOT, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]

    # One minute is a second here: reminders every second, the escalation after two.
    fast = env_of(db_url, flows, OPSLOOP_CLOCK_SPEED="60")
    with serving_headless(fast, tmp_path / "headless.log") as headless:
        until(lambda: audited(engine, "interaction.escalated") == 1
              and audited(engine, "interaction.reminded") >= 2, timeout=60,
              what="serve --no-slack to remind twice and escalate")  # fmt: skip
        assert headless.terminate() == 0, headless.output()

    with SlackDouble() as slack:
        for n in range(2):  # the second start posts nothing again
            with serving(slack, db_url, flows, tmp_path / f"bot-{n}.log") as served:
                until(lambda s=served: nudges(s, run_id) == (1, 1), timeout=30,
                      what="one reminder and one escalation in the thread")  # fmt: skip
                until(lambda s=served: s.slack.calls() and not _sending(engine),
                      what="the outbox to be sent")  # fmt: skip
                assert nudges(served, run_id) == (1, 1)


def _sending(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        return conn.execute(sa.text(query)).scalar_one()
