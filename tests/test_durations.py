"""The one duration format, and that the CLI and Slack both show it."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import pytest

from bot.console import ConsoleFrontEnd, format_steps
from bot.durations import format_duration
from bot.slack.blocks import render_step_detail
from orchestrator.protocol import RunView, StepView

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, ""), (-1, ""), (math.nan, ""), (math.inf, ""),
        (0, "0ms"), (0.0004, "0ms"), (0.85, "850ms"), (0.9994, "999ms"),
        (0.9996, "1.0s"), (1, "1.0s"), (12.5, "12.5s"), (59.94, "59.9s"),
        (59.96, "1m 00s"), (60, "1m 00s"), (75, "1m 15s"), (125, "2m 05s"),
        (3599.4, "59m 59s"), (3599.6, "1h 00m"), (7440, "2h 04m"), (90_000, "25h 00m"),
    ],
)  # fmt: skip
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


def test_the_cli_and_slack_show_a_step_time_alike():
    step = StepView("build", "python", "succeeded", started_at=T0,
                    finished_at=T0 + timedelta(seconds=125))  # fmt: skip
    run = RunView("r-1", "deploy", "succeeded", {}, "U0ALICE", steps=(step,))
    assert "2m 05s" in format_steps(run, None).splitlines()[1]
    out = io.StringIO()
    ConsoleFrontEnd(out).step_changed(run, step)
    assert out.getvalue().rstrip().endswith("succeeded 2m 05s")
    detail = render_step_detail(run, step)["blocks"][0]["text"]["text"]
    assert "*succeeded* after 2m 05s" in detail
