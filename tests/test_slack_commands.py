"""`/ops` text parsing: every subcommand, shell-like quoting, and errors that carry the usage."""

from __future__ import annotations

import pytest

from bot.slack.commands import (
    SUBCOMMANDS,
    Cancel,
    CommandError,
    Help,
    ListWorkflows,
    Pending,
    Plan,
    Retry,
    Run,
    Runs,
    ShowReport,
    Status,
    parse_command,
    usage,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("help run", Help("run")),
        ("HELP", Help()),
        ("list", ListWorkflows()),
        ("run hello", Run("hello", {})),
        ("run deploy service=api version=v1.2.3", Run("deploy", {"service": "api",
                                                                  "version": "v1.2.3"})),
        ("status", Status()),
        ("status r-0123456789", Status("r-0123456789")),
        ("runs", Runs()),
        ("pending", Pending()),
        ("cancel r-1", Cancel("r-1")),
        ("retry r-1", Retry("r-1")),
        ("retry r-1 build", Retry("r-1", "build")),
        ("plan deploy", Plan("deploy")),
        ("plan deploy service=api", Plan("deploy", {"service": "api"})),
        ("report", ShowReport()),
        ("report 24h", ShowReport(86400.0)),
        ("report 90d deploy hello", ShowReport(90 * 86400.0, ("deploy", "hello"))),
        ("report deploy", ShowReport(workflows=("deploy",))),
    ],
)  # fmt: skip
def test_every_subcommand(text, command):
    assert parse_command(text) == command


def test_values_are_quoted_like_a_shell():
    command = parse_command("""run hello name="two words; not a command" msg='it''s' empty=""")
    assert command == Run("hello", {"name": "two words; not a command", "msg": "its", "empty": ""})
    assert parse_command(r"run hello name=a\ b") == Run("hello", {"name": "a b"})


def test_value_may_hold_an_equals_sign():
    assert parse_command("run hello q=a=b") == Run("hello", {"q": "a=b"})


def test_slack_entities_and_curly_quotes_are_undone():
    text = "run hello name=\u201ctom &amp; jerry\u201d html=&lt;b&gt;"
    assert parse_command(text) == Run("hello", {"name": "tom & jerry", "html": "<b>"})


@pytest.mark.parametrize(
    ("text", "message", "usage_of"),
    [
        ("deploy", "`deploy` is not an /ops command", None),
        ("rnu hello", "did you mean `run`?", None),
        ("run", "`run` needs WORKFLOW", "run"),
        ("run service=api", "`run` needs a workflow before `service=api`", "run"),
        ("run deploy service", "`service` is not a name=value assignment", "run"),
        ("run deploy a=1 a=2", "`a` is given twice", "run"),
        ("cancel", "`cancel` needs RUN", "cancel"),
        ("cancel r-1 r-2", "`cancel` does not take `r-2`", "cancel"),
        ("retry r-1 build extra", "`retry` does not take `extra`", "retry"),
        ("list all", "`list` does not take `all`", "list"),
        ("plan", "`plan` needs WORKFLOW", "plan"),
        ("help nope", "there is no /ops command `nope`", None),
        ("report 7x", "`7x` is not a window; write 24h, 7d or 90d", "report"),
        ("report 0d", "`0d` is not a window", "report"),
        ('run hello name="unclosed', "cannot read the command: no closing quotation", None),
    ],
)
def test_mistakes_raise_with_a_reason_and_the_usage(text, message, usage_of):
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    error = caught.value
    assert message in error.message
    assert error.usage == usage(usage_of)
    assert str(error) == f"{error.message}\n\n{error.usage}"


def test_usage_lists_every_subcommand_aligned():
    text = usage()
    lines = text.splitlines()
    assert lines[0] == "Usage:"
    assert [line.split()[1] for line in lines[1:]] == list(SUBCOMMANDS)
    assert "  /ops run WORKFLOW [key=value ...]  start a run" in text
    assert len({line.index(SUBCOMMANDS[n][1]) for line, n in zip(lines[1:], SUBCOMMANDS,
                                                                 strict=True)}) == 1  # fmt: skip


def test_usage_of_one_subcommand():
    expected = "Usage:\n  /ops retry RUN [STEP]  retry a run's failed steps, or one step"
    assert usage("retry") == expected


def test_command_error_is_a_value_error():
    assert issubclass(CommandError, ValueError)
