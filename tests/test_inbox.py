"""The Slack inbox (bot/slack/inbox.py, bot/slack/intake.py): a request stored before its
ack is stored once, done once however often it is delivered, and taken over by another
replica when the one that acked it died or stopped renewing its lease."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.slack import ids
from bot.slack.http_transport import http_in_background
from bot.slack.inbox import CLICK, COMMAND, LEASE, Inbox, Request, request_key, run_id_for
from bot.slack.server import Bot
from orchestrator import runs
from orchestrator.clock import FakeClock
from orchestrator.leases import replica_id
from orchestrator.queries import interaction, open_interactions
from tests.bot_harness import running_test_bot
from tests.polling import until
from tests.slack_double import SlackDouble
from tests.slack_signing import action_from_blocks, block_actions, post_signed, slash_command

CHANNEL = "C0INBOX"
GATED = """
name: gated
steps:
  - id: approve
    approval:
      message: "Ship it?"
      approvers: {users: [U0BOB]}
"""


def _command_body(text: str = "run gated", user: str = "U0ALICE") -> dict[str, str]:
    return dict(parse_qsl(slash_command(text, user_id=user, channel_id=CHANNEL)))


def _dead_owner() -> str:
    """A claimant as a process on this host that has exited (what a SIGKILL leaves)."""
    child = subprocess.Popen(["true"])
    child.wait()
    host = replica_id().partition("/")[0]
    return f"{host}/{child.pid}/dead0000"


def test_a_request_delivered_twice_is_stored_once(engine: Engine) -> None:
    inbox = Inbox(engine, FakeClock().now, replica_id())
    body = _command_body()
    first = inbox.accept(COMMAND, body)
    assert first is not None and first.id == request_key(COMMAND, body)
    assert inbox.accept(COMMAND, json.loads(json.dumps(body))) is None  # a redelivery
    assert inbox.accept(COMMAND, _command_body()) is not None  # a new trigger_id: a new one
    assert inbox.open_count() == 2


def test_a_dead_replicas_request_is_taken_over_by_exactly_one_other(engine: Engine) -> None:
    clock = FakeClock()
    dead = Inbox(engine, clock.now, _dead_owner())
    acked = dead.accept(COMMAND, _command_body())
    assert acked is not None
    me, other = Inbox(engine, clock.now, replica_id()), Inbox(engine, clock.now, replica_id())
    taken = me.orphans()
    assert [(r.id, r.recovered) for r in taken] == [(acked.id, True)]
    assert taken[0].body == acked.body
    assert other.orphans() == []  # its new claimant is alive and its lease runs
    assert not dead.finish(acked.id)  # the dead one's claim is gone
    assert me.finish(taken[0].id)
    assert me.orphans() == [] and me.open_count() == 0


def test_a_live_replicas_request_is_left_to_it_until_its_lease_runs_out(engine: Engine) -> None:
    clock = FakeClock()
    elsewhere = Inbox(engine, clock.now, "another-host/4242/abcd1234")
    acked = elsewhere.accept(CLICK, _command_body())
    assert acked is not None
    me = Inbox(engine, clock.now, replica_id())
    assert me.orphans() == []
    clock.advance(LEASE - timedelta(seconds=1))
    assert me.orphans() == []
    clock.advance(timedelta(seconds=2))
    assert [r.id for r in me.orphans()] == [acked.id]


# -- done once, through the real handlers ---------------------------------------------


@pytest.fixture
def bot(db_url: str, tmp_path: Path) -> Iterator[tuple[Bot, SlackDouble]]:
    with SlackDouble() as slack:
        clock = FakeClock(datetime.now(UTC))
        with running_test_bot(db_url, tmp_path, slack, {"gated": GATED}, clock, CHANNEL) as b:
            yield b, slack


def _run_ids(bot: Bot) -> list[str]:
    with bot.orch.engine.connect() as conn:
        return list(conn.execute(sa.select(runs.RUNS.c.id)).scalars())


def test_a_command_done_twice_starts_one_run(bot: tuple[Bot, SlackDouble]) -> None:
    served, slack = bot
    body = _command_body()
    body["response_url"] = slack.response_url("twice")
    request = Request(request_key(COMMAND, body), COMMAND, body)
    served.intake.process(request)
    served.intake.process(Request(request.id, COMMAND, body, attempts=2))  # a takeover's redo
    assert len(_run_ids(served)) == 1
    replies = [r["text"] for r in slack.responses("twice")]
    assert len(replies) == 2 and all(_run_ids(served)[0] in r for r in replies)


def test_a_click_done_twice_is_one_answer(bot: tuple[Bot, SlackDouble]) -> None:
    served, slack = bot
    run_id = served.orch.start_run("gated", {}, started_by="U0ALICE", front_end="slack",
                                   channel=CHANNEL)  # fmt: skip
    iid = until(lambda: next(iter(open_interactions(served.orch.engine, run_id)), None)).id
    gate = until(lambda: next((m for p in slack.messages(CHANNEL)
                               for m in slack.thread(CHANNEL, p.ts)
                               if "Ship it?" in json.dumps(m.blocks)), None),
                 what="the gate message")  # fmt: skip
    action = action_from_blocks(gate.blocks or [], ids.APPROVE)
    form = block_actions([action], user_id="U0BOB", channel_id=CHANNEL,
                         response_url=slack.response_url("click"))  # fmt: skip
    body = json.loads(dict(parse_qsl(form))["payload"])
    request = Request(request_key(CLICK, body), CLICK, body)
    served.intake.process(request)
    served.intake.process(Request(request.id, CLICK, body, attempts=2))
    assert interaction(served.orch.engine, iid).status == "approved"
    audit = runs.AUDIT
    with served.orch.engine.connect() as conn:
        answered = conn.execute(
            sa.select(sa.func.count()).select_from(audit)
            .where(audit.c.interaction_id == iid, audit.c.action == "interaction.answered")
        ).scalar_one()  # fmt: skip
    assert answered == 1
    replies = [r["text"] for r in slack.responses("click")]
    assert len(replies) == 1 and "already approved" in replies[0]  # the redo says so; nothing new


def test_over_http_the_guard_stores_each_request_and_the_bot_marks_it_done(
    bot: tuple[Bot, SlackDouble],
) -> None:
    served, slack = bot
    with http_in_background(served.wsgi) as url:
        help_body = slash_command("help", channel_id=CHANNEL, response_url=slack.response_url())
        status, text = post_signed(url, help_body)
        assert status == 200 and "run" in text  # the usage, in the ack
        run_body = slash_command("run gated", channel_id=CHANNEL,
                                 response_url=slack.response_url("run"))  # fmt: skip
        assert post_signed(url, run_body) == (200, "")
        assert post_signed(url, run_body)[0] == 401  # a replay: the same row, refused
    until(lambda: served.intake.inbox.open_count() == 0, what="both requests marked done")
    run_id = run_id_for(request_key(COMMAND, dict(parse_qsl(run_body))))
    assert _run_ids(served) == [run_id]
    until(lambda: any(run_id in r["text"] for r in slack.responses("run")), what="the reply")
