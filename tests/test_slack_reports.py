"""A scheduled report in Slack: fired by the fake clock, posted through the outbox, the
chart uploaded the way Slack requires now, each exactly once through a storm of 429/500."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bot.slack.server import Bot
from orchestrator.clock import FakeClock
from tests.bot_harness import running_test_bot
from tests.polling import until
from tests.slack_double import SlackDouble

CHANNEL = "C0OPS"
DIGEST = """
name: weekly-digest
schedules: [{cron: "0 9 * * MON", timezone: UTC, channel: C0OPS}]
steps:
  - id: digest
    report: {since: 7d, chart: true}
"""


@pytest.fixture
def bot(db_url: str, tmp_path: Path, slack: SlackDouble) -> Iterator[tuple[Bot, FakeClock]]:
    clock = FakeClock(datetime(2030, 1, 7, 8, 59, tzinfo=UTC))  # a Monday
    with running_test_bot(db_url, tmp_path, slack, {"digest": DIGEST}, clock, None) as running:
        yield running, clock


def report_posts(slack: SlackDouble) -> list:
    return [c for c in slack.calls("chat.postMessage", ok=True)
            if str(c.params.get("text", "")).startswith("opsloop report")]  # fmt: skip


def test_a_scheduled_report_posts_text_and_chart_once_through_a_storm(
    bot: tuple[Bot, FakeClock], slack: SlackDouble
) -> None:
    running, clock = bot
    slack.storm(rate=0.3, seed=11, statuses=[429, 500], retry_after=0)
    clock.advance(timedelta(minutes=2))  # 09:01: the 09:00 fire is due
    until(lambda: slack.files(CHANNEL), timeout=90, what="the chart in the channel")
    until(lambda: running.outbox.counts().keys() == {"sent"}, timeout=90, what="the outbox")
    slack.calm()
    [post] = report_posts(slack)
    [chart] = slack.files(CHANNEL)
    assert chart.shared == [(CHANNEL, post.response["ts"])]  # in the report's thread, once
    assert len(slack.calls("files.completeUploadExternal", ok=True)) == 1
    image = Image.open(io.BytesIO(chart.data or b""))
    image.load()
    assert image.size == (900, 450) and chart.alt_txt and "runs per day" in chart.alt_txt
    assert "The chart follows in the thread" in str(post.params["blocks"])
    assert any(c.faulted for c in slack.calls())  # the storm did hit


def test_a_chart_slack_refuses_for_good_leaves_the_text_and_says_so(
    bot: tuple[Bot, FakeClock], slack: SlackDouble
) -> None:
    running, clock = bot
    slack.fail_next("files.completeUploadExternal", status=200, error="invalid_channel")
    clock.advance(timedelta(minutes=2))
    until(lambda: running.outbox.counts().keys() == {"sent"} and report_posts(slack),
          timeout=60, what="the outbox")  # fmt: skip
    [post] = report_posts(slack)
    # polled: the note comes with the chart's send, and the outbox was once seen all "sent"
    # with the report posted and no note yet (the full suite, PostgreSQL)
    until(lambda: any("could not be uploaded (invalid_channel)" in str(m.blocks)
                      for m in slack.thread(CHANNEL, post.response["ts"])),
          what="the note that the chart could not be uploaded")  # fmt: skip
    assert slack.files() == []


def test_a_chart_share_whose_answer_was_lost_is_found_not_uploaded_again(
    bot: tuple[Bot, FakeClock], slack: SlackDouble
) -> None:
    """Slack shared the chart but its answer was lost (a 500 after the work): the retry
    finds the share in the report's thread by its file name and uploads nothing more."""
    running, clock = bot
    slack.fail_next("files.completeUploadExternal", status=500, lost=True)
    clock.advance(timedelta(minutes=2))
    until(lambda: running.outbox.counts().keys() == {"sent"} and report_posts(slack),
          timeout=60, what="the outbox")  # fmt: skip
    [post] = report_posts(slack)
    [chart] = slack.files(CHANNEL)
    assert chart.shared == [(CHANNEL, post.response["ts"])]
    assert len(slack.calls("files.completeUploadExternal")) == 1  # the lost one, not redone
    assert len(slack.calls("files.getUploadURLExternal")) == 1
    [share] = [m for m in slack.thread(CHANNEL, post.response["ts"]) if m.files]
    assert share.files[0]["name"].startswith("opsloop-report-")
