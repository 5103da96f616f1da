"""Changes made outside `serve` reach Slack: the CLI starts a run and answers its gate.

`serve` runs as a real process against the Slack double; `opsloop run` and `opsloop
decide` run as other real processes on the same database, with no Slack token. The bot
learns of their changes from the database (bot/slack/reconciler.py) and posts the
board and the gate message, then edits the gate message once it is answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.polling import until
from tests.sample_workflows import GATED
from tests.serve_process import CHANNEL, ROOT, Served, serving
from tests.slack_double import Message, SlackDouble

PROMPT = "Ship api?"
# A deadline, not a bound: the bot reads the log twice a second, so it takes well under a
# second when the machine is idle; how soon is for bench/, not for a test on a loaded CI box.
SOON_S = 60.0


def opsloop(db_url: str, flows: Path, *args: str) -> dict:
    """`opsloop ARGS --json` as its own process, as an operator's shell runs it."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SLACK_", "OPSLOOP_"))}
    env.update(DATABASE_URL=db_url, OPSLOOP_WORKFLOWS=str(flows), OPSLOOP_USER="U0OPS")
    done = subprocess.run([sys.executable, "-m", "bot.cli", *args, "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def buttons(message: Message) -> list[dict]:
    return [e for b in message.blocks or [] if b.get("type") == "actions" for e in b["elements"]]


def gate_message(served: Served, run_id: str) -> Message:
    board = until(lambda: next((m for m in served.slack.messages(CHANNEL)
                                if run_id in (m.text or "")), None),
                  timeout=SOON_S, what="the CLI run's board")  # fmt: skip
    return until(lambda: next((m for m in served.slack.thread(CHANNEL, board.ts)
                               if PROMPT in json.dumps(m.blocks)), None),
                 timeout=SOON_S, what="the gate message")  # fmt: skip


def test_a_run_started_and_answered_with_the_cli_is_shown_in_slack(
    db_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "gated.yml").write_text(GATED)
    with SlackDouble() as slack, serving(slack, db_url, flows, tmp_path / "bot.log") as served:
        run = opsloop(db_url, flows, "run", "gated", "service=api")
        assert run["status"] == "waiting"
        gate = gate_message(served, run["run_id"])
        assert [b["text"]["text"] for b in buttons(gate)][:2] == ["Approve", "Reject"]

        done = opsloop(db_url, flows, "decide", run["pending"][0]["id"], "approve",
                       "--as", "U0BOSS")  # fmt: skip
        assert done["status"] == "succeeded"

        def answered() -> Message | None:
            now = next(m for m in slack.thread(CHANNEL, gate.thread_ts or "") if m.ts == gate.ts)
            return now if not buttons(now) else None

        edited = until(answered, timeout=SOON_S, what="the gate message edited, without buttons")
        assert "U0BOSS" in json.dumps(edited.blocks)
        board = next(m for m in slack.messages(CHANNEL) if run["run_id"] in (m.text or ""))
        until(lambda: "succeeded" in json.dumps(board_now(slack, board.ts)).lower(),
              timeout=SOON_S, what="the board to show the run succeeded")  # fmt: skip
        # each message once: the bot did not post what the CLI did twice
        assert len([m for m in slack.messages(CHANNEL) if run["run_id"] in (m.text or "")]) == 1
        assert (
            len([m for m in slack.thread(CHANNEL, board.ts) if PROMPT in json.dumps(m.blocks)]) == 1
        )


def board_now(slack: SlackDouble, ts: str) -> dict:
    message = next(m for m in slack.messages(CHANNEL) if m.ts == ts)
    return {"text": message.text, "blocks": message.blocks}
