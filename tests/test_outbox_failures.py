"""A message Slack refuses for good fails at once, what waits for it fails too, and the
operator is told: a log line, an audit entry on the run, and a gauge.

The case from issue 11: a schedule with a wrong `channel:` had its board retried for
an hour and its gate messages never posted and never reported.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from slack_double import SlackDouble

from bot.slack.delivery import SlackDelivery, delivery_client
from bot.slack.dispatcher import Dispatcher
from bot.slack.outbox import OUTBOX, Outbox
from bot.slack.outbox_failures import FailedCollector, report
from orchestrator.queries import run_view
from tests.polling import until


def statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(OUTBOX.c.id, OUTBOX.c.status)).all())


def test_a_wrong_channel_fails_its_messages_at_once_and_reports_them(
    engine: sa.Engine, slack: SlackDouble, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(engine)
    outbox.post("board:r-wrong", "schedule.paused", channel="C0NOSUCH", run_id="r-wrong",
                payload={"schedule_id": "nightly", "reason": "x"})  # fmt: skip
    outbox.post("gate:i-wrong", "gate.post", channel="C0NOSUCH", run_id="r-wrong",
                payload={"interaction_id": "i-wrong"}, after="board:r-wrong")  # fmt: skip
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found", retry_after=None)
    send = SlackDelivery(delivery_client(slack.token, slack.api_url), lambda r: run_view(engine, r),
                         lambda iid: None)  # fmt: skip
    dispatcher = Dispatcher(outbox, send, poll_s=0.05)
    dispatcher.start()
    try:
        until(lambda: statuses(engine)["board:r-wrong"] == "failed",
              what="the refused post to fail at once, not after an hour of retries")  # fmt: skip
    finally:
        dispatcher.stop()
    assert len(slack.calls("chat.postMessage")) == 1

    with caplog.at_level(logging.ERROR, logger="bot.slack.outbox_failures"):
        assert report(outbox) == 2
    assert statuses(engine) == {"board:r-wrong": "failed", "gate:i-wrong": "failed"}
    assert "channel_not_found" in caplog.text and "gate:i-wrong" in caplog.text
    with engine.connect() as conn:
        audited = conn.execute(sa.text(
            "SELECT count(*) FROM audit_log WHERE run_id = 'r-wrong' "
            "AND action = 'slack.message_failed'")).scalar()  # fmt: skip
    assert audited == 2
    assert report(outbox) == 0  # once
    gauge, _ = FailedCollector(outbox).collect()
    assert gauge.samples[0].value == 2
