"""Logging, configured once at start-up from OPSLOOP_LOG_LEVEL and OPSLOOP_LOG_FORMAT.

`text` (the default) is for a terminal: time, level, logger, message. `json` is for
production: one object per line with time, level, logger, message and whichever of
run_id / step_id / interaction_id / schedule_id the line was written under
(orchestrator/log_context.py, or `extra=`). Every line passes through `Redact`, which
replaces the secrets it was given (Slack tokens, signing secret, database password)
wherever they appear, tracebacks included.

`serve` logs at INFO by default; the other commands at WARNING, so a command's own
output is all a person sees unless something went wrong.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.settings import SettingsError
from orchestrator import log_context

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MASK = "[redacted]"
HANDLER_NAME = "opsloop"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s"
# Per-request chatter from libraries would drown the bot's own lines at INFO.
NOISY = ("alembic", "apscheduler", "slack_bolt", "slack_sdk", "waitress", "urllib3")


class Redact(logging.Filter):
    """Replaces each secret in a record's rendered message and traceback with MASK."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.clean(record.getMessage()), None
        if record.exc_info:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for name in log_context.FIELDS:
            record.__dict__.setdefault(name, log_context.current().get(name))
        return True


class TextFormatter(logging.Formatter):
    """One line per record; the ids it knows in brackets at the end."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        known = [f"{k}={v}" for k in log_context.FIELDS if (v := getattr(record, k, None))]
        record.ids = f" [{' '.join(known)}]" if known else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, ids."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((k, v) for k in log_context.FIELDS if (v := getattr(record, k, None)))
        if record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, default=str)


def secrets_of(env: Mapping[str, str], database_url: str | None) -> list[str]:
    """What must never be printed: Slack's tokens and signing secret, the database password."""
    found = [env.get(k, "") for k in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")]
    for url in (database_url, env.get("DATABASE_URL")):
        if url:
            with contextlib.suppress(ArgumentError, ValueError):  # the database says it later
                found.append(make_url(url).password or "")
    return [s for s in found if s]


def configure(
    *, default_level: str, secrets: Iterable[str | None] = (),
    env: Mapping[str, str] | None = None, stream: TextIO | None = None,
) -> None:  # fmt: skip
    """Route every logger to `stream` (stderr) in the configured format, secrets masked.

    Raises SettingsError naming a level or format it does not know."""
    env = os.environ if env is None else env
    level = env.get("OPSLOOP_LOG_LEVEL", "").strip().upper() or default_level
    form = env.get("OPSLOOP_LOG_FORMAT", "").strip().lower() or "text"
    if level not in LEVELS:
        raise SettingsError(f"OPSLOOP_LOG_LEVEL={level!r} must be one of {', '.join(LEVELS)}")
    if form not in FORMATS:
        raise SettingsError(f"OPSLOOP_LOG_FORMAT={form!r} must be text or json")
    handler = logging.StreamHandler(stream or _Stderr())
    handler.addFilter(Redact(secrets))
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)  # configured twice (the demo runs commands): one handler
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.DEBUG if root.level == logging.DEBUG else logging.WARNING
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(quiet)
    logging.captureWarnings(True)


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Inside, `configure` may be called; on exit logging is as it was before: the root's
    handlers and level, the NOISY loggers' levels, where warnings go. For the CLI called
    in-process (the demo, tests), which must not change the logging of its caller."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY}
    show = warnings.showwarning
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)
        if warnings.showwarning is not show:
            logging.captureWarnings(False)  # forgets what it saved, for a later True
            warnings.showwarning = show


class _Stderr:
    """Whatever sys.stderr is when a line is written (tests and the demo swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
