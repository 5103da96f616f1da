"""The outbox sending to the Slack double over real HTTP: fair across channels, never
sleeping on a 429, and never posting twice when Slack's answer is lost."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from slack_double import SlackDouble

from bot.slack import blocks
from bot.slack.delivery import SlackDelivery, delivery_client
from bot.slack.dispatcher import Dispatcher
from bot.slack.outbox import OUTBOX, Outbox
from bot.slack.pacing import ChannelPacer
from bot.slack.shown import run_shown
from orchestrator.protocol import RunView, StepView
from tests.polling import until


def run_view(run_id: str) -> RunView:
    channel = f"C{run_id.upper()}"
    return RunView(id=run_id, workflow="deploy", status="running", params={},
                   started_by="U0ALICE", channel=channel,
                   steps=(StepView("build", "action", "failed", 1, error="exit 1"),))  # fmt: skip


def delivery(slack: SlackDouble) -> SlackDelivery:
    return SlackDelivery(delivery_client(slack.token, slack.api_url), run_view, lambda iid: None)


def paused(outbox: Outbox, key: str, channel: str) -> None:
    """A top-level post that needs no run (what a schedule that paused itself posts)."""
    outbox.post(key, "schedule.paused", channel=channel, run_id=None,
                payload={"schedule_id": key, "reason": "failed 3 times"})  # fmt: skip


def test_a_flood_to_one_channel_does_not_delay_another(engine: sa.Engine, slack) -> None:
    outbox = Outbox(engine)
    for n in range(200):
        paused(outbox, f"flood:{n}", "C0BUSY")
    paused(outbox, "other", "C0QUIET")
    # The pacer's clock moves only when the test moves it: the busy channel spends its burst
    # of 3 and then waits for as long as the test likes, however slow this machine is.
    now = [0.0]
    pacer = ChannelPacer(per_second=20.0, burst=3, monotonic=lambda: now[0])
    dispatcher = Dispatcher(outbox, delivery(slack), pacer=pacer, poll_s=0.05)
    dispatcher.start()
    try:
        # the old dispatcher slept on its one thread, so the quiet post came after all 200
        until(lambda: slack.messages("C0QUIET") and len(slack.messages("C0BUSY")) == 3,
              what="the quiet channel's post while the busy channel waits")  # fmt: skip
        now[0] += 1.0  # 20 more posts' worth, capped at the burst
        until(lambda: len(slack.messages("C0BUSY")) >= 6, what="the busy channel's next burst")
    finally:
        dispatcher.stop()
    assert len(slack.messages("C0BUSY")) == 6  # paced: nothing more until the clock moves
    assert len(slack.messages("C0QUIET")) == 1


def test_a_retry_after_keeps_the_row_waiting_while_other_channels_go(
    engine: sa.Engine, slack
) -> None:  # fmt: skip
    outbox = Outbox(engine)
    paused(outbox, "held", "C0HELD")
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    dispatcher = Dispatcher(outbox, delivery(slack), poll_s=0.05)
    dispatcher.drain()  # the held channel's post meets the 429
    paused(outbox, "free", "C0FREE")
    dispatcher.drain()
    assert [m.text for m in slack.messages("C0FREE")] and not slack.messages("C0HELD")
    with engine.connect() as conn:
        row = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == "held")).mappings().one()
    assert row["status"] == "pending" and row["attempts"] == 0  # waiting, not failing
    assert row["not_before"] > datetime.now(UTC) + timedelta(seconds=25)
    assert len(slack.calls("chat.postMessage")) == 2  # nothing retried the 429 in place


def test_lost_answers_give_no_duplicate_and_no_lost_post(engine: sa.Engine, slack) -> None:
    """Slack did the post but answered 500: the row is looked up by its metadata first."""
    now = [datetime.now(UTC)]
    outbox = Outbox(engine, clock=lambda: now[0])
    runs = [f"r{n}" for n in range(8)]
    for run in runs:
        outbox.post(f"board:{run}", "board.post", channel=f"C{run.upper()}", run_id=run)
        outbox.post(f"step:{run}", "thread.step", channel=f"C{run.upper()}", run_id=run,
                    payload={"step_id": "build"}, after=f"board:{run}")  # fmt: skip
        paused(outbox, f"dm:{run}", "U0ALICE")
    slack.fail_next("chat.postMessage", status=500, times=3)  # these three did not land
    slack.storm(0.4, seed=7, statuses=(500, 503), lost=True)  # every method, answers lost
    dispatcher = Dispatcher(outbox, delivery(slack), pacer=ChannelPacer(per_second=1000.0))
    for _ in range(60):
        if outbox.counts() == {"sent": 3 * len(runs)}:
            break
        dispatcher.drain()
        now[0] += timedelta(minutes=2)  # past every retry delay
    assert outbox.counts() == {"sent": 3 * len(runs)}
    for run in runs:
        boards = slack.messages(f"C{run.upper()}")
        assert len(boards) == 1, f"{run}: {len(boards)} boards"
        assert len(slack.thread(f"C{run.upper()}", boards[0].ts)) == 1
    assert len(slack.messages("D0ALICE")) == len(runs)
    posts = slack.calls("chat.postMessage")
    assert len([c for c in posts if c.faulted]) > 5  # the storm hit posts, not just look-ups
    assert slack.calls("conversations.history") and slack.calls("conversations.replies")


def test_a_post_found_after_a_lost_answer_shows_the_state_now(engine: sa.Engine, slack) -> None:
    """The board was posted while the run waited, Slack's answer was lost (or the sender
    was killed), and the run moved on before the row was sent again: the message found
    by its metadata shows the old state, so it is edited to what the row records as
    shown. Before, the row recorded the state now while Slack kept the old one, and no
    edit ever came (seen in the reconcile probe: an approved gate kept its buttons)."""
    now = [datetime.now(UTC)]
    outbox = Outbox(engine, clock=lambda: now[0])
    views = {"r1": run_view("r1")}
    send = SlackDelivery(delivery_client(slack.token, slack.api_url), views.__getitem__,
                         lambda iid: None)  # fmt: skip
    outbox.post("board:r1", "board.post", channel="CR1", run_id="r1")
    slack.fail_next("chat.postMessage", status=500, lost=True)  # posted; the answer lost
    dispatcher = Dispatcher(outbox, send, pacer=ChannelPacer(per_second=1000.0))
    dispatcher.drain()
    (board,) = slack.messages("CR1")
    assert "running" in board.text
    views["r1"] = dataclasses.replace(views["r1"], status="succeeded")  # meanwhile
    until(lambda: (now.__setitem__(0, now[0] + timedelta(minutes=2)), dispatcher.drain(),
                   outbox.counts() == {"sent": 1})[-1], what="the row sent")  # fmt: skip
    (board,) = slack.messages("CR1")
    assert board.text == blocks.render_run_board(views["r1"])["text"]
    with engine.connect() as conn:
        result = conn.execute(sa.select(OUTBOX.c.result)).scalar_one()
    assert result["shown"] == run_shown(views["r1"]) and result["ts"] == board.ts
