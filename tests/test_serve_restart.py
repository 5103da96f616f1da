"""`opsloop serve` killed mid-step and started again: the crash-recovery question reaches Slack.

A shell step that is not idempotent was running when the bot died, so on start-up
recovery asks a person whether to retry, skip or fail it. Recovery runs while the
bot starts, so the question is only seen if the Slack front end is wired in before
the orchestrator starts (it used to be patched in afterwards, and the question was
dropped). Both bots are real processes (tests/serve_process.py); the step is a real
process that waits for a file the test creates.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from bot.slack import ids
from bot.slack.outbox import Outbox
from orchestrator.queries import run_view
from tests.polling import until
from tests.sample_workflows import blocking_shell, workflow_dir
from tests.serve_process import CHANNEL, Served, serving, stop
from tests.slack_double import Message, SlackDouble

QUESTION = "was running when opsloop stopped"


def fragile_workflow(started: Path, release: Path) -> str:
    """One step that records each start, then blocks until `release` exists."""
    return f"""
name: fragile
steps:
  - id: migrate
    shell: {blocking_shell(started, release)}
"""


def recovery_question(served: Served, run_id: str) -> Message:
    """The recovery question in the run's thread, once the bot has posted it."""
    board = served.board(run_id)
    return until(lambda: next((m for m in served.slack.thread(CHANNEL, board.ts)
                               if QUESTION in json.dumps(m.blocks)), None),
                 timeout=30, what="the recovery question in the run's thread")  # fmt: skip


def test_a_step_cut_off_by_sigkill_is_asked_about_in_slack_after_restart(
    db_url: str, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    flows = workflow_dir(tmp_path, {"fragile": fragile_workflow(started, release)})
    try:
        with SlackDouble() as slack:
            with serving(slack, db_url, flows, tmp_path / "first.log") as first:
                first.slack.wait_for_ack(first.command("run fragile"))
                run_id = first.run_id()
                first.board(run_id)
                until(started.exists, what="the step's process to start")
                # Killed with a post in flight, the bot would leave it for the lease to free
                # (a minute); the question waits for the board. Kill it between messages.
                outbox = Outbox(first.engine)
                until(lambda: outbox.counts().keys() == {"sent"}, what="the outbox to drain")
                assert stop(first.process, signal.SIGKILL) == -signal.SIGKILL
                assert first.status(run_id) == "running"

            with serving(slack, db_url, flows, tmp_path / "second.log") as second:
                until(lambda: second.status(run_id) == "waiting", what="recovery to ask")
                question = recovery_question(second, run_id)
                choices = [json.loads(e["value"])["v"] for b in question.blocks or []
                           if b["type"] == "actions" for e in b["elements"]]  # fmt: skip
                assert choices == ["retry", "skip", "fail"]

                # Not anyone: an outsider's "retry" of a non-idempotent step is refused.
                second.slack.wait_for_ack(
                    second.click(question, ids.decide_action_id(0), "U0EVE", reply="eve")
                )
                [refusal] = until(lambda: second.slack.responses("eve"), what="the refusal")
                assert "may not answer" in refusal["text"]
                assert second.status(run_id) == "waiting"
                assert started.read_text().count("x") == 1  # not started again
                release.touch()
                # the requester may answer (so may admins and the workflow's retry people)
                click = second.click(question, ids.decide_action_id(0), "U0ALICE")
                second.slack.wait_for_ack(click)
                until(lambda: second.status(run_id) == "succeeded", what="the retried run")
                steps = run_view(second.engine, run_id).steps
                assert [(s.step_id, s.status) for s in steps] == [("migrate", "succeeded")]
                assert started.read_text().count("x") == 2, "the step ran again"
    finally:
        release.touch()  # the first step's process outlives its killed bot: let it end
