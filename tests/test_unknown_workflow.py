"""A mistyped workflow name gets one short line: not found, the nearest name if one is
near, and where the workflows are listed; never every workflow's name (with many, a
wall of text). Through Slack as it reaches the bot (signed HTTP, the Slack double)
and through the CLI. Also: an App Home that Slack refuses to publish is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot_harness import Harness, home_opened, post_event, serving
from tests.cli_harness import Cli, in_process_cli
from tests.polling import until
from tests.sample_workflows import workflow_dir
from tests.slack_double import SlackDouble

CHANNEL = "C0OPS"
MANY = {f"service-{n:02}": f'name: service-{n:02}\nsteps:\n  - id: go\n    shell: ["true"]\n'
        for n in range(40)}  # fmt: skip
FLOWS = {**MANY, "deploy": 'name: deploy\nsteps:\n  - id: go\n    shell: ["true"]\n',
         "payroll-export": "name: payroll-export\naccess:\n  run: {users: [U0LEAD]}\n"
                           'steps:\n  - id: go\n    shell: ["true"]\n'}  # fmt: skip


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    with SlackDouble() as slack, serving(db_url, tmp_path, slack, FLOWS, CHANNEL) as harness:
        yield harness


def test_ops_run_and_report_of_an_unknown_name_suggest_one_and_point_to_list(
    harness: Harness,
) -> None:
    for text, reply in (("run deploi", "run"), ("report deploi", "report"),
                        ("report 7d deploy deploi", "report-2"), ("run zzqqx", "far")):  # fmt: skip
        assert harness.command(text, reply=reply)[0] == 200
    for reply in ("run", "report", "report-2"):
        said = harness.reply(reply)["text"]
        assert "no workflow named 'deploi'; did you mean 'deploy'?" in said, said
        assert "`/ops list` shows the workflows you may run" in said
        assert "service-" not in said  # before: every workflow's name
    far = harness.reply("far")["text"]
    assert "no workflow named 'zzqqx'" in far and "did you mean" not in far
    assert "`/ops list`" in far and "service-" not in far


def test_a_near_name_is_suggested_only_to_those_who_may_run_it(harness: Harness) -> None:
    for text, user, reply in (("run payroll-exprot", "U0ALICE", "alice-run"),
                              ("plan payroll-exprot", "U0ALICE", "alice-plan"),
                              ("run payroll-exprot", "U0LEAD", "lead-run")):  # fmt: skip
        assert harness.command(text, user=user, reply=reply)[0] == 200
    for reply in ("alice-run", "alice-plan"):
        said = harness.reply(reply)["text"]
        assert "no workflow named 'payroll-exprot'" in said and "payroll-export" not in said
    assert "did you mean 'payroll-export'?" in harness.reply("lead-run")["text"]
    assert harness.command("list", user="U0ALICE", reply="alice-list")[0] == 200
    assert "payroll-export" not in harness.reply("alice-list")["text"]


def test_an_app_home_slack_refuses_is_logged_with_slacks_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.slack.fail_next("views.publish", status=200, retry_after=None, error="not_enabled")
    with caplog.at_level(logging.WARNING):
        assert post_event(harness.url, home_opened("U0ALICE"))[0] == 200
        until(lambda: harness.slack.calls("views.publish"), what="the publish Slack refused")
        [warning] = until(
            lambda: [r for r in caplog.records if "App Home" in r.getMessage()],
            what="a log line about the home tab",
        )
    assert warning.levelno == logging.WARNING
    assert "not_enabled" in warning.getMessage() and "U0ALICE" in warning.getMessage()


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Cli:
    return in_process_cli(db_url, workflow_dir(tmp_path, FLOWS), monkeypatch, capsys)


def test_the_cli_names_a_near_workflow_and_not_all_of_them(cli: Cli, tmp_path: Path) -> None:
    for command in ("run", "plan"):
        code, _, err = cli(command, "deploi")
        assert code == 2
        assert err.strip() == (
            "opsloop: no workflow named 'deploi'; did you mean 'deploy'? "
            f"(the workflows are the files in {tmp_path / 'workflows'})"
        )
