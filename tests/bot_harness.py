"""`serve`'s whole bot, in this process, against the Slack double: for the tests that
drive it through real HTTP (test_slack_bot, test_operations, test_slack_reports)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.settings import Settings, SlackSettings
from bot.slack.server import Bot, running_bot
from orchestrator.clock import FakeClock
from tests.slack_double import SlackDouble
from tests.slack_signing import SIGNING_SECRET


@contextmanager
def running_test_bot(
    db_url: str, tmp_path: Path, slack: SlackDouble, workflows: Mapping[str, str],
    clock: FakeClock, channel: str | None, **settings: Any,
) -> Iterator[Bot]:  # fmt: skip
    """The bot on `workflows` (file name -> text) with its clock and default channel;
    `settings` are more Settings fields (admins="U0ROOT", rate_limit="20/min", ...)."""
    flows = tmp_path / "workflows"
    flows.mkdir()
    for name, text in workflows.items():
        (flows / f"{name}.yml").write_text(text)
    config = Settings(database_url=db_url, workflows_dir=flows, user="test", **settings)
    slack_settings = SlackSettings(
        bot_token=slack.token, signing_secret=SIGNING_SECRET, app_token=None,
        api_url=slack.api_url, channel=channel, host="127.0.0.1", port=0,
    )  # fmt: skip
    with running_bot(config, slack_settings, clock) as bot:
        yield bot
