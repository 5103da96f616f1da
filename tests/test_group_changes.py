"""Group membership across replicas: a change Slack told one replica of reaches the others
within `check_s` of their clock, through the database (real SQLite / PostgreSQL, the Slack
double as the Web API)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from slack_sdk import WebClient

from bot.slack.directory import SlackDirectory
from orchestrator.clock import FakeClock
from orchestrator.group_changes import change_count, record_change
from tests.slack_double import SlackDouble


def test_a_change_told_to_one_replica_reaches_another_within_seconds(engine: sa.Engine) -> None:
    clock = FakeClock(datetime.now(UTC))
    with SlackDouble() as slack:
        slack.set_group("S0SRE", ["U0SRE", "U0ANNA"])

        def replica() -> SlackDirectory:
            client = WebClient(token=slack.token, base_url=slack.api_url)
            return SlackDirectory(client, now=lambda: clock.now().timestamp(),
                                  changes=lambda group: change_count(engine, group))  # fmt: skip

        told, other = replica(), replica()
        assert "U0ANNA" in told.members("S0SRE") and "U0ANNA" in other.members("S0SRE")
        slack.set_group("S0SRE", ["U0SRE"])
        told.forget("S0SRE")  # the replica the event reached
        record_change(engine, "S0SRE", clock.now(), event="subteam_members_changed",
                      removed=["U0ANNA"])  # fmt: skip
        assert "U0ANNA" not in told.members("S0SRE")
        asked = len(slack.calls("usergroups.users.list"))
        assert "U0ANNA" in other.members("S0SRE")  # trusted for check_s, without a look
        assert len(slack.calls("usergroups.users.list")) == asked
        clock.advance(other.check_s)
        assert "U0ANNA" not in other.members("S0SRE")  # 2 s later, not 60
        asked = len(slack.calls("usergroups.users.list"))
        clock.advance(other.check_s)
        assert "U0ANNA" not in other.members("S0SRE")  # unchanged count: no new look-up
        assert len(slack.calls("usergroups.users.list")) == asked
    assert change_count(engine, "S0SRE") == 1 and change_count(engine, "S0OTHER") == 0
