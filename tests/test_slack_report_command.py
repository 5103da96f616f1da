"""`/ops report` and the App Home's "this week": the report's figures, limited to the
runs the person may see (orchestrator/access.py), over real signed HTTP to the bot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.slack.http_transport import http_in_background
from bot.slack.server import Bot
from orchestrator.clock import FakeClock
from tests.bot_harness import home_opened, post_event, running_test_bot
from tests.polling import until
from tests.sample_workflows import GATED
from tests.slack_double import SlackDouble
from tests.slack_signing import post_signed, slash_command

OPS, OTHER = "C0OPS", "C0OTHER"

QUICK = """
name: quick
steps:
  - id: work
    shell: ["true"]
"""

BROKEN = """
name: broken
steps:
  - id: work
    shell: ["false"]
"""


@dataclass
class Harness:
    url: str
    bot: Bot
    slack: SlackDouble

    def ask(self, text: str, user: str, channel: str, reply: str) -> dict[str, Any]:
        """`/ops <text>` from `user` in `channel`: the one ephemeral answer it gets."""
        body = slash_command(text, user_id=user, channel_id=channel,
                             response_url=self.slack.response_url(reply))  # fmt: skip
        status, _ = post_signed(self.url, body)
        assert status == 200
        [answer] = until(lambda: self.slack.responses(reply), what=f"the answer to {text}")
        assert answer["response_type"] == "ephemeral"
        return answer

    def start(self, workflow: str, user: str, channel: str | None, **params: str) -> str:
        orch = self.bot.orch
        run_id = orch.start_run(workflow, params, started_by=user, front_end="slack",
                                channel=channel)  # fmt: skip
        orch.wait(run_id)
        return run_id


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    flows = {"quick": QUICK, "broken": BROKEN, "gated": GATED}
    clock = FakeClock(datetime.now(UTC))
    with (
        SlackDouble() as slack,
        running_test_bot(db_url, tmp_path, slack, flows, clock, OPS) as bot,
        http_in_background(bot.wsgi, threads=4) as url,
    ):
        h = Harness(url, bot, slack)
        h.start("quick", "U0ALICE", OPS)  # alice's, in #ops
        h.start("broken", "U0CAROL", OPS)  # carol's, in #ops: alice sees it there
        h.start("quick", "U0BOB", OTHER)  # bob's, elsewhere: alice does not see it
        h.start("broken", "U0BOB", OTHER)
        h.start("quick", "U0ALICE", OTHER)  # alice's own, elsewhere: she sees it
        h.start("gated", "U0BOB", OTHER, service="api")  # its gate asks U0BOSS
        clock.advance(1)  # a window ends now and leaves now out
        yield h


def text_of(answer: dict[str, Any]) -> str:
    return json.dumps(answer.get("blocks", []))


def key_figures(answer: dict[str, Any]) -> str:
    return answer["blocks"][2]["text"]["text"]


def test_ops_report_counts_only_the_runs_the_person_may_see(harness: Harness) -> None:
    alice = harness.ask("report", "U0ALICE", OPS, "alice")
    assert key_figures(alice).startswith("*3* runs · *1* failed · success *67%* · *0* waiting")
    assert "Ops report: last 7 days" in text_of(alice)

    boss = harness.ask("report 7d", "U0BOSS", OPS, "boss")  # the gate asks the boss
    assert key_figures(boss).startswith("*3* runs · *1* failed · success *50%* · *1* waiting")
    assert "`gated.approve`" in text_of(boss)
    assert "gates asked *1*" in key_figures(boss) and "gates asked *0*" in key_figures(alice)

    bob = harness.ask("report 24h quick broken", "U0BOB", OTHER, "bob")
    assert key_figures(bob).startswith("*3* runs · *1* failed · success *67%*")
    assert "only quick, broken" in text_of(bob) and "gated" not in text_of(bob)


def test_ops_report_bad_window_or_workflow_says_what_is_wrong(harness: Harness) -> None:
    body = slash_command("report 7x", response_url=harness.slack.response_url("bad"))
    status, ack = post_signed(harness.url, body)  # a parse error is the ack itself
    answer = json.loads(ack)
    assert status == 200 and answer["response_type"] == "ephemeral"
    assert "`7x` is not a window; write 24h, 7d or 90d" in answer["text"]
    assert "/ops report [7d] [WORKFLOW ...]" in answer["text"]
    unknown = harness.ask("report 7d deploy", "U0ALICE", OPS, "unknown")
    assert "no workflow named 'deploy'" in unknown["text"] and "`/ops list`" in unknown["text"]
    assert "blocks" not in unknown or "Ops report" not in text_of(unknown)


def test_app_home_shows_this_week_of_the_runs_the_viewer_may_see(harness: Harness) -> None:
    for user in ("U0ALICE", "U0BOSS"):
        assert post_event(harness.url, home_opened(user))[0] == 200
    alice = until(lambda: harness.slack.home("U0ALICE"), what="alice's home")
    boss = until(lambda: harness.slack.home("U0BOSS"), what="the boss's home")
    week = [b for b in alice["blocks"] if b.get("block_id") == "this-week"]
    # From the home (no channel), alice sees only her own two runs.
    assert week[0]["text"]["text"] == (
        "*2* runs: 2 succeeded, 0 failed, 0 cancelled, 0 running · success *100%* · "
        "time to decision p50 *-* · *0* gates waiting now"
    )
    [week] = [b for b in boss["blocks"] if b.get("block_id") == "this-week"]
    assert week["text"]["text"] == (
        "*1* runs: 0 succeeded, 0 failed, 0 cancelled, 1 running · success *-* · "
        "time to decision p50 *-* · *1* gates waiting now"
    )
