"""Logging as configured at start-up: the formats, the ids, secrets masked, reprs."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator

import pytest

from bot import logging_setup
from bot.cli import main
from bot.settings import Settings, SettingsError, SlackSettings
from orchestrator import log_context

TOKEN = "xoxb-1111-secret-token"
SIGNING = "signing-secret-abcdef"


@pytest.fixture
def restore_root() -> Iterator[None]:
    with logging_setup.restored():
        yield


def configured(env: dict[str, str], default: str = "INFO") -> io.StringIO:
    out = io.StringIO()
    logging_setup.configure(default_level=default, env=env, stream=out,
                            secrets=[TOKEN, SIGNING, "pw-secret"])  # fmt: skip
    return out


def test_json_lines_carry_the_ids_bound_where_they_were_written(restore_root: None) -> None:
    out = configured({"OPSLOOP_LOG_FORMAT": "json"})
    log = logging.getLogger("opsloop.test")
    with log_context.bound(run_id="r-1", step_id="build"):
        log.info("step %s started", "build")
    log.warning("a schedule fired", extra={"schedule_id": "nightly"})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first.keys() == {"time", "level", "logger", "message", "run_id", "step_id"}
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "opsloop.test",
        "step build started",
    )
    assert (first["run_id"], first["step_id"]) == ("r-1", "build")
    assert second["schedule_id"] == "nightly" and "run_id" not in second


def test_secrets_are_masked_in_messages_and_tracebacks(restore_root: None) -> None:
    out = configured({"OPSLOOP_LOG_FORMAT": "text", "OPSLOOP_LOG_LEVEL": "debug"})
    log = logging.getLogger("opsloop.test")
    log.debug("token %s and secret %s", TOKEN, SIGNING)
    try:
        raise RuntimeError(f"postgresql://u:pw-secret@db/x refused {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    printed = out.getvalue()
    assert TOKEN not in printed and SIGNING not in printed and "pw-secret" not in printed
    assert "refused [redacted]" in printed and "token [redacted] and secret [redacted]" in printed
    assert "RuntimeError" in printed  # the traceback is kept, only masked


def test_a_bad_level_or_format_is_a_settings_error(restore_root: None) -> None:
    with pytest.raises(SettingsError, match="OPSLOOP_LOG_LEVEL='LOUD'"):
        configured({"OPSLOOP_LOG_LEVEL": "loud"})
    with pytest.raises(SettingsError, match="text or json"):
        configured({"OPSLOOP_LOG_FORMAT": "xml"})


def test_the_cli_is_quiet_at_its_default_level(
    restore_root: None, capsys: pytest.CaptureFixture[str], tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    logging.getLogger().setLevel(logging.DEBUG)
    # as the console script runs it: the process's arguments, the set-up kept
    monkeypatch.setattr(sys, "argv", ["opsloop", "db", "--database-url",
                                      f"sqlite:///{tmp_path}/x.db", "status"])  # fmt: skip
    assert main() in (0, 1)
    logging.getLogger("opsloop.test").info("not for a person at a terminal")
    assert "not for a person" not in capsys.readouterr().err
    assert logging.getLogger().level == logging.WARNING


def test_the_cli_called_in_process_leaves_logging_as_it_found_it(tmp_path: object) -> None:
    """The demo and the tests call main(argv) in-process: a root logger left at WARNING
    with a handler on stderr, libraries silenced and warnings logged would follow every
    later test."""
    root, noisy = logging.getLogger(), logging.getLogger("apscheduler")
    with logging_setup.restored():  # whatever this test changes, the next one is spared
        root.setLevel(logging.INFO)
        noisy.setLevel(logging.INFO)
        before = (list(root.handlers), root.level, noisy.level, warnings.showwarning)
        assert main(["db", "--database-url", f"sqlite:///{tmp_path}/x.db", "status"]) in (0, 1)
        after = (list(root.handlers), root.level, noisy.level, warnings.showwarning)
    assert after == before


def test_settings_reprs_print_no_secret() -> None:
    slack = SlackSettings.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING})
    settings = Settings(database_url="postgresql://ops:pw-secret@db:5432/opsloop")
    shown = repr(slack) + repr(settings) + str(settings)
    assert TOKEN not in shown and SIGNING not in shown and "pw-secret" not in shown
    assert "db:5432/opsloop" in shown  # where it points is still said
    assert logging_setup.secrets_of({"SLACK_BOT_TOKEN": TOKEN}, settings.database_url) == [
        TOKEN, "pw-secret"]  # fmt: skip
