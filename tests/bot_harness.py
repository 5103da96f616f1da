"""`serve`'s whole bot, in this process, against the Slack double: for the tests that
drive it through real HTTP (test_slack_bot, test_slack_security, test_operations,
test_slack_reports, ...)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.settings import Settings, SlackSettings
from bot.slack.http_transport import http_in_background
from bot.slack.server import Bot, running_bot
from orchestrator.clock import FakeClock
from tests.polling import until
from tests.sample_workflows import workflow_dir
from tests.slack_double import SlackDouble
from tests.slack_signing import (
    SIGNING_SECRET,
    action_from_blocks,
    block_actions,
    post_signed,
    slash_command,
)


@contextmanager
def running_test_bot(
    db_url: str, tmp_path: Path, slack: SlackDouble, workflows: Mapping[str, str],
    clock: FakeClock, channel: str | None, **settings: Any,
) -> Iterator[Bot]:  # fmt: skip
    """The bot on `workflows` (file name -> text) with its clock and default channel;
    `settings` are more Settings fields (admins="U0ROOT", rate_limit="20/min", ...)."""
    flows = workflow_dir(tmp_path, workflows)
    config = Settings(database_url=db_url, workflows_dir=flows, user="test", **settings)
    slack_settings = SlackSettings(
        bot_token=slack.token, signing_secret=SIGNING_SECRET, app_token=None,
        api_url=slack.api_url, channel=channel, host="127.0.0.1", port=0,
    )  # fmt: skip
    with running_bot(config, slack_settings, clock) as bot:
        yield bot


def post_event(url: str, event: Mapping[str, Any]) -> tuple[int, str]:
    """A signed Events API request carrying `event`, as Slack sends it."""
    body = {"type": "event_callback", "team_id": "T0TEAM", "api_app_id": "A0OPSLOOP",
            "event_id": f"Ev{time.time_ns()}", "event_time": int(time.time()),
            "event": dict(event)}  # fmt: skip
    return post_signed(url, json.dumps(body), headers={"Content-Type": "application/json"})


def home_opened(user: str) -> dict[str, Any]:
    """The `app_home_opened` event Slack sends when `user` opens the app's Home tab."""
    return {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
            "event_ts": f"{time.time():.6f}"}  # fmt: skip


@dataclass
class Harness:
    """The bot at `url`, reached as Slack reaches it: signed commands and clicks from
    `channel`; what it posts is read back from the Slack double."""

    url: str
    bot: Bot
    slack: SlackDouble
    clock: FakeClock  # the bot's: deadlines, reminders and escalations move with it
    channel: str

    def command(self, text: str, user: str = "U0ALICE", reply: str = "cmd",
                channel: str | None = None) -> tuple[int, str]:  # fmt: skip
        """`/ops <text>` from `user` in `channel` (the harness's by default)."""
        body = slash_command(text, user_id=user, channel_id=channel or self.channel,
                             response_url=self.slack.response_url(reply))  # fmt: skip
        return post_signed(self.url, body)

    def click(self, blocks: list, action_id: str, user: str, reply: str = "click",
              option: str | None = None) -> tuple[int, str]:  # fmt: skip
        """A click on the button (or menu `option`) `action_id` of `blocks`."""
        action = action_from_blocks(blocks, action_id, option_value=option)
        body = block_actions([action], user_id=user, channel_id=self.channel,
                             response_url=self.slack.response_url(reply))  # fmt: skip
        return post_signed(self.url, body)

    def reply(self, name: str) -> dict[str, Any]:
        """The one ephemeral answer posted to response_url `name`."""
        [answer] = until(lambda: self.slack.responses(name), what=f"the answer to {name}")
        assert answer["response_type"] == "ephemeral"
        return answer

    def sql(self, query: str, **params: Any) -> list[tuple]:
        with self.bot.orch.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]

    def runs(self) -> list[str]:
        """Every run's id, oldest first."""
        return [r[0] for r in self.sql("SELECT id FROM workflow_run ORDER BY created_at")]

    def run_id(self) -> str:
        """The newest run's id, once there is one."""
        newest = "SELECT id FROM workflow_run ORDER BY created_at DESC LIMIT 1"
        return until(lambda: self.sql(newest), what="a run")[0][0]

    def board(self, run_id: str) -> Any:
        """The run's parent message as the channel shows it now."""
        return until(lambda: next((m for m in self.slack.messages(self.channel)
                                   if not m.thread_ts and run_id in m.text), None),
                     what="the run board")  # fmt: skip

    def gate(self, run_id: str, prompt: str) -> Any:
        """The gate message asking `prompt` in the run's thread, as it is now."""
        parent = self.board(run_id)

        def find() -> Any:
            thread = self.slack.thread(self.channel, parent.ts)
            return next((m for m in thread if prompt in str(m.blocks)), None)

        return until(find, what=f"the gate message asking {prompt!r}")

    def status(self, run_id: str) -> str:
        return self.bot.orch.view(run_id).status


@contextmanager
def serving(
    db_url: str, tmp_path: Path, slack: SlackDouble, workflows: Mapping[str, str],
    channel: str, **settings: Any,
) -> Iterator[Harness]:  # fmt: skip
    """`running_test_bot` on a fake clock, served over HTTP by 8 threads."""
    clock = FakeClock(datetime.now(UTC))
    with (
        running_test_bot(db_url, tmp_path, slack, workflows, clock, channel, **settings) as bot,
        http_in_background(bot.wsgi, threads=8) as url,
    ):
        yield Harness(url, bot, slack, clock, channel)
