"""A request Bolt answered without running our listener is not done later behind the
person's back (the request guard stores every signed request before Bolt sees it).

Bolt asks Slack's auth.test on its first request (its SingleTeamAuthorization middleware,
cached once it succeeds). If Slack refuses it then, Bolt answers the person "Please reinstall
this app" and never calls the `/ops` listener; the guard had already stored the command
as an open inbox row, which the inbox sweep takes over once its lease runs out and does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.slack.http_transport import http_in_background
from orchestrator.clock import FakeClock
from tests.bot_harness import running_test_bot
from tests.polling import until
from tests.sample_workflows import GATED
from tests.slack_double import SlackDouble
from tests.slack_signing import post_signed, slash_command

CHANNEL = "C0OPS"


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, object, SlackDouble, FakeClock]]:
    slack = SlackDouble().start()
    clock = FakeClock(datetime.now(UTC))
    try:
        with (
            running_test_bot(db_url, tmp_path, slack, {"gated": GATED}, clock, CHANNEL) as bot,
            http_in_background(bot.wsgi, threads=4) as url,
        ):
            yield url, bot, slack, clock
    finally:
        slack.stop()


def test_a_command_bolt_refused_is_not_started_later(served) -> None:
    url, bot, slack, clock = served
    slack.fail_next("auth.test", status=200, retry_after=None, error="invalid_auth")
    body = slash_command("run gated service=api", channel_id=CHANNEL,
                         response_url=slack.response_url("cmd"))  # fmt: skip
    status, told = post_signed(url, body)
    assert status == 200 and "reinstall this app" in told  # the person is told it failed
    clock.advance(31)  # the stored row's lease runs out
    bot.intake.recover()
    until(lambda: done(bot), what="the inbox to be done with the command")
    with bot.orch.engine.connect() as conn:
        started = conn.execute(sa.text("SELECT count(*) FROM workflow_run")).scalar_one()
    assert started == 0  # before: the run the person was told failed started 31 s later


def done(bot) -> bool:
    with bot.orch.engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM slack_inbox WHERE status = 'open'")
        return conn.execute(query).scalar_one() == 0
