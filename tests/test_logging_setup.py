"""Logging as configured at start-up: the formats, the ids, secrets masked, reprs."""

from __future__ import annotations

import io
import json
import logging
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
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
    restore_root: None, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    assert main(["db", "--database-url", f"sqlite:///{tmp_path}/x.db", "status"]) in (0, 1)
    logging.getLogger("opsloop.test").info("not for a person at a terminal")
    assert "not for a person" not in capsys.readouterr().err
    assert logging.getLogger().level == logging.WARNING


def test_settings_reprs_print_no_secret() -> None:
    slack = SlackSettings.from_env({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING})
    settings = Settings(database_url="postgresql://ops:pw-secret@db:5432/opsloop")
    shown = repr(slack) + repr(settings) + str(settings)
    assert TOKEN not in shown and SIGNING not in shown and "pw-secret" not in shown
    assert "db:5432/opsloop" in shown  # where it points is still said
    assert logging_setup.secrets_of({"SLACK_BOT_TOKEN": TOKEN}, settings.database_url) == [
        TOKEN, "pw-secret"]  # fmt: skip
