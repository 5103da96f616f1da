"""One `Settings` object built at start-up from flags and the environment, checked once."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from storage.engine import DEFAULT_URL


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says how to fix it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=DEFAULT_URL, repr=False)  # may hold a password
    workflows_dir: Path = Path("workflows")
    user: str = "cli"  # who the CLI acts as: runs are started by and answered as this id
    groups: str = ""  # OPSLOOP_GROUPS="S0ONCALL=U1,U2;S0LEADS=U3" for gates that name groups
    max_workers: int = 16
    clock_speed: float = 1.0  # OPSLOOP_CLOCK_SPEED: tests and demos of real processes only
    admins: str = ""  # OPSLOOP_ADMINS="U0LEAD,S0SRE": manage every run (orchestrator/access.py)
    rate_limit: str = ""  # OPSLOOP_RATE_LIMIT="20/min": starts per person (rate_limit.py)
    shutdown_grace: float = 30.0  # OPSLOOP_SHUTDOWN_GRACE: s running steps get on SIGTERM
    metrics_port: int | None = None  # OPSLOOP_METRICS_PORT: /metrics on a port of its own; 0: any
    step_timeout: float | None = 3600.0  # OPSLOOP_STEP_TIMEOUT: steps without `timeout`
    workflow_workers: int = 12  # OPSLOOP_WORKFLOW_WORKERS: one workflow's share of the pool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: str | int | None) -> Settings:
        """Flags win over the environment, which wins over the defaults."""
        env = os.environ if env is None else env

        def pick(flag: str, var: str, default: str) -> str:
            value = flags.get(flag)
            return str(value) if value not in (None, "") else env.get(var) or default

        workers = pick("max_workers", "OPSLOOP_MAX_WORKERS", "16")
        if not workers.isdigit() or not 1 <= int(workers) <= 1024:
            raise SettingsError(
                f"OPSLOOP_MAX_WORKERS={workers!r} is not a whole number between 1 and 1024"
            )
        grace = pick("shutdown_grace", "OPSLOOP_SHUTDOWN_GRACE", "30")
        if not _seconds(grace, 0, 3600):
            raise SettingsError(f"OPSLOOP_SHUTDOWN_GRACE={grace!r} must be seconds from 0 to 3600")
        metrics_port = env.get("OPSLOOP_METRICS_PORT", "")
        if metrics_port and not (metrics_port.isdigit() and 0 <= int(metrics_port) <= 65535):
            raise SettingsError(
                f"OPSLOOP_METRICS_PORT={metrics_port!r} must be a port number (1-65535), "
                "0 for any free port, or unset"
            )
        return cls(
            metrics_port=int(metrics_port) if metrics_port else None,
            step_timeout=_step_timeout(pick("step_timeout", "OPSLOOP_STEP_TIMEOUT", "1h")),
            workflow_workers=_share(env.get("OPSLOOP_WORKFLOW_WORKERS", ""), int(workers)),
            shutdown_grace=float(grace),
            clock_speed=_clock_speed(env.get("OPSLOOP_CLOCK_SPEED", "1")),
            database_url=pick("database_url", "DATABASE_URL", DEFAULT_URL),
            workflows_dir=Path(pick("workflows", "OPSLOOP_WORKFLOWS", "workflows")),
            user=pick("user", "OPSLOOP_USER", f"cli:{_login()}"),
            groups=env.get("OPSLOOP_GROUPS", ""),
            max_workers=int(workers),
            admins=env.get("OPSLOOP_ADMINS", ""),
            rate_limit=env.get("OPSLOOP_RATE_LIMIT", ""),
        )

    @property
    def database(self) -> str:
        """The database URL with any password masked, for messages and reprs."""
        return masked_url(self.database_url)

    def __repr__(self) -> str:
        return (
            f"Settings(database={self.database!r}, workflows_dir={self.workflows_dir!r}, "
            f"user={self.user!r}, groups={self.groups!r}, max_workers={self.max_workers})"
        )

    def check_workflows_dir(self) -> Path:
        if not self.workflows_dir.is_dir():
            raise SettingsError(
                f"workflows directory {str(self.workflows_dir)!r} does not exist; "
                "run opsloop from the project directory, or set OPSLOOP_WORKFLOWS "
                "(or --workflows) to the directory that holds your workflow .yml files"
            )
        return self.workflows_dir


def _step_timeout(text: str) -> float | None:
    """OPSLOOP_STEP_TIMEOUT: a duration as `timeout:` takes it, or `none` for no default."""
    if text == "1h":  # the default, without importing the workflow language
        return 3600.0
    if text.strip().lower() == "none":
        return None
    from orchestrator.workflow.yaml_converters import parse_duration  # the language's rule

    try:
        return parse_duration(text)
    except ValueError:
        raise SettingsError(
            f"OPSLOOP_STEP_TIMEOUT={text!r} must be a duration such as 1h, 30m or 90s (the "
            "longest a step without its own `timeout` may run), or none for no limit"
        ) from None


def _share(text: str, max_workers: int) -> int:
    """OPSLOOP_WORKFLOW_WORKERS: default all but a quarter of OPSLOOP_MAX_WORKERS."""
    from orchestrator.step_limits import workflow_share

    if not text:
        return workflow_share(max_workers)
    if not text.isdigit() or not 1 <= int(text) <= max_workers:
        raise SettingsError(
            f"OPSLOOP_WORKFLOW_WORKERS={text!r} must be a whole number from 1 to "
            f"OPSLOOP_MAX_WORKERS ({max_workers}): the steps one workflow may run at once"
        )
    return int(text)


def _clock_speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 10_000:
        raise SettingsError(f"OPSLOOP_CLOCK_SPEED={text!r} must be a number above 0 (1 is real "
                            "time; 60 makes a minute pass in a second, for tests)")  # fmt: skip
    return speed


def masked_url(url: str) -> str:
    """`url` with its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unreadable database URL>"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a bare container
        return "unknown"


SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackSettings:
    """What `opsloop serve` needs besides `Settings`; checked once at start."""

    # Secrets stay out of repr (and so out of any log line or traceback that shows one).
    bot_token: str = field(repr=False)
    signing_secret: str | None = field(repr=False)
    app_token: str | None = field(repr=False)  # set: Socket Mode; unset: HTTP mode
    api_url: str = SLACK_API_URL
    channel: str | None = None  # where runs started outside Slack are posted
    host: str = "0.0.0.0"
    port: int = 3000
    threads: int = 16
    posts_per_second: float = 1.0  # per channel: Slack's chat.postMessage limit

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **flags: str | int | None
    ) -> SlackSettings:
        env = os.environ if env is None else env

        def pick(flag: str, var: str, default: str = "") -> str:
            value = flags.get(flag)
            return str(value) if value not in (None, "") else env.get(var) or default

        problems: list[str] = []
        bot_token = pick("bot_token", "SLACK_BOT_TOKEN")
        if not bot_token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN must be the app's bot token (xoxb-...), from "
                            "OAuth & Permissions after installing the app")  # fmt: skip
        app_token = pick("app_token", "SLACK_APP_TOKEN") or None
        if app_token and not app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-...) with "
                            "connections:write, or unset for HTTP mode")  # fmt: skip
        secret = pick("signing_secret", "SLACK_SIGNING_SECRET") or None
        if app_token is None and not secret:
            problems.append("SLACK_SIGNING_SECRET is needed in HTTP mode (Basic Information > "
                            "App Credentials); or set SLACK_APP_TOKEN for Socket Mode")  # fmt: skip
        api_url = pick("api_url", "SLACK_API_URL", SLACK_API_URL)
        if not api_url.startswith(("http://", "https://")):
            problems.append(f"SLACK_API_URL={api_url!r} must be an http(s) URL such as "
                            f"{SLACK_API_URL}")  # fmt: skip
        port = pick("port", "PORT", "3000")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            problems.append(f"PORT={port!r} must be a port number (0-65535)")
        rate = pick("posts_per_second", "OPSLOOP_SLACK_POSTS_PER_SECOND", "1")
        if not _positive(rate):
            problems.append(f"OPSLOOP_SLACK_POSTS_PER_SECOND={rate!r} must be a number above 0 "
                            "(posts per second per channel; Slack allows about 1)")  # fmt: skip
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(
            bot_token=bot_token, signing_secret=secret, app_token=app_token,
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            channel=pick("channel", "OPSLOOP_CHANNEL") or None,
            host=pick("host", "HOST", "0.0.0.0"), port=int(port), posts_per_second=float(rate),
        )  # fmt: skip


def _positive(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return 0 < value < float("inf")


def _seconds(text: str, low: float, high: float) -> bool:
    try:
        return low <= float(text) <= high
    except ValueError:
        return False
