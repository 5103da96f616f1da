"""`opsloop serve` as a real process in Socket Mode, for the tests that drive it.

The bot runs as `python -m bot.cli serve` with SLACK_APP_TOKEN set, so it calls
apps.connections.open on the Slack double (tests/slack_double.py) and connects to
the double's WebSocket; a test pushes envelopes over that socket as Slack does and
reads what the bot posted through the Web API and stored in the database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from sqlalchemy.engine import Engine

from orchestrator.queries import recent_runs, run_view
from storage.engine import create_engine
from tests.polling import until
from tests.slack_double import Message, SlackDouble
from tests.slack_signing import SIGNING_SECRET, action_from_blocks, block_actions, slash_command

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "C0OPS"
START_S = 60.0  # imports, schema set-up and recovery before the bot connects; ~2 s here
# How long a stopping bot gets before it is killed: a deadline, not a speed check (a stop
# takes ~1 s; on CI's loaded cores one Socket Mode bot took over 10 s and was killed, -9).
STOP_S = 60.0


@dataclass
class Served:
    """A running `opsloop serve` in Socket Mode, and the Slack double it talks to."""

    slack: SlackDouble
    process: subprocess.Popen[bytes]
    engine: Engine  # the bot's database, read by the test
    log: Path  # the bot's stdout and stderr

    def command(self, text: str, user: str = "U0ALICE", reply: str = "cmd") -> str:
        """Push `/ops <text>` over the socket; return the envelope_id."""
        body = slash_command(text, user_id=user, channel_id=CHANNEL,
                             response_url=self.slack.response_url(reply))  # fmt: skip
        return self.slack.push_slash_command(dict(parse_qsl(body)))

    def click(self, message: Message, action_id: str, user: str, reply: str = "click") -> str:
        """Push a click on the button `action_id` of `message`; return the envelope_id."""
        action = action_from_blocks(message.blocks or [], action_id)
        body = block_actions([action], user_id=user, channel_id=CHANNEL, message_ts=message.ts,
                             response_url=self.slack.response_url(reply))  # fmt: skip
        return self.slack.push_interactive(json.loads(dict(parse_qsl(body))["payload"]))

    def run_id(self) -> str:
        return until(lambda: next((r.id for r in recent_runs(self.engine, 1)), None),
                     what="a run in the database")  # fmt: skip

    def status(self, run_id: str) -> str:
        return run_view(self.engine, run_id).status

    def board(self, run_id: str) -> Message:
        return until(lambda: next((m for m in self.slack.messages(CHANNEL)
                                   if run_id in (m.text or "")), None),
                     what="the run board")  # fmt: skip

    def gate(self, run_id: str, prompt: str) -> Message:
        parent = self.board(run_id)
        return until(lambda: next((m for m in self.slack.thread(CHANNEL, parent.ts)
                                   if prompt in json.dumps(m.blocks)), None),
                     what=f"the gate message asking {prompt!r}")  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def serve_env(db_url: str, flows: Path, extra_env: Mapping[str, str] | None = None) -> dict:
    """The environment of a `serve` under test: this one's, but nothing from the caller's
    Slack or opsloop set-up and no proxy (slack_sdk would send the WebSocket to 127.0.0.1
    through $HTTPS_PROXY); then the database, the workflows and `extra_env`, where an empty
    value unsets."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.upper().startswith(("SLACK_", "OPSLOOP_"))
                 and k.upper() not in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")}  # fmt: skip
    env = {
        **inherited,
        "DATABASE_URL": db_url,
        "OPSLOOP_WORKFLOWS": str(flows),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    return {k: v for k, v in env.items() if v}


def launch(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`opsloop ARGS...` as a child process, its stdout and stderr in the file `log`."""
    # a file, not a pipe nobody reads, which could fill and block it
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_default_sigint)  # fmt: skip


def start_bot(
    slack: SlackDouble, db_url: str, flows: Path, log: Path, *, app_token: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """`opsloop serve` talking to `slack`; Socket Mode unless extra_env unsets the app token."""
    slack_env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_APP_TOKEN": app_token or slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "OPSLOOP_CHANNEL": CHANNEL,
        **(extra_env or {}),
    }
    return launch(["serve"], serve_env(db_url, flows, slack_env), log)


def _default_sigint() -> None:
    """Let Ctrl-C reach the bot even when the tests run where SIGINT is ignored (a shell's
    background job without job control): Python only turns SIGINT into KeyboardInterrupt
    if it was not ignored when the process started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Signal the bot, kill it if it has not exited after STOP_S; its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_S)
    return process.returncode


@contextmanager
def serving(
    slack: SlackDouble, db_url: str, flows: Path, log: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Served]:  # fmt: skip
    """The bot started and connected; stopped (SIGTERM, then SIGKILL) on exit."""
    process = start_bot(slack, db_url, flows, log, extra_env=extra_env)
    engine = create_engine(db_url)
    served = Served(slack, process, engine, log)
    try:
        until(lambda: slack.socket_connections() or process.poll() is not None,
              timeout=START_S, what="the bot to connect")  # fmt: skip
        assert process.poll() is None, f"the bot exited:\n{served.output()}"
        yield served
    finally:
        stop(process)
        engine.dispose()


@dataclass
class Headless:
    """A running `opsloop serve --no-slack`; its stdout and stderr in the file `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def says(self, text: str) -> bool:
        """Whether the process has written `text` (stdout or stderr) so far."""
        return text in self.output()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then `exited`."""
        self.process.send_signal(signal.SIGTERM)
        return self.exited(timeout)

    def exited(self, timeout: float = 60.0) -> int:
        """Its exit code once it has stopped (a graceful stop waits for running steps);
        past `timeout` it raises, and `serving_headless` kills it."""
        return self.process.wait(timeout)


@contextmanager
def serving_headless(env: Mapping[str, str], log: Path) -> Iterator[Headless]:
    """`opsloop serve --no-slack` with `env` (whole: build it with serve_env or by hand),
    output to `log`; on exit, SIGTERM if it is still up, then SIGKILL after STOP_S."""
    process = launch(["serve", "--no-slack"], env, log)
    try:
        yield Headless(process, log)
    finally:
        stop(process)


def logged_port(log: Path, pattern: str) -> int | None:
    """The port in the first line of `log` that matches `pattern` (one group), if any yet."""
    found = re.search(pattern, log.read_text(errors="replace"))
    return int(found.group(1)) if found else None


def metrics_port(log: Path) -> int | None:
    """The port /metrics got with OPSLOOP_METRICS_PORT=0, once the log says so."""
    return logged_port(log, r"metrics on http://[^:/\s]+:(\d+)/metrics")


def listening_port(process: subprocess.Popen[bytes], log: Path) -> int | None:
    """The port the bot says it listens on (bound with PORT=0), once its log says so."""
    return logged_port(log, r"listening on http://127\.0\.0\.1:(\d+)/")


@contextmanager
def serving_http(
    slack: SlackDouble, db_url: str, flows: Path, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Served, str]]:
    """The bot in HTTP mode, signed requests checked with SIGNING_SECRET; yields it and
    its events URL once /healthz answers. The bot binds PORT=0 and says which port it got:
    a port picked free here and closed could be taken before the bot starts and binds it."""
    env = {"SLACK_APP_TOKEN": "", "SLACK_SIGNING_SECRET": SIGNING_SECRET, "PORT": "0",
           "HOST": "127.0.0.1", **(extra_env or {})}  # fmt: skip
    process = start_bot(slack, db_url, flows, log, extra_env=env)
    engine = create_engine(db_url)
    served = Served(slack, process, engine, log)
    try:
        port = until(lambda: listening_port(process, log) or process.poll() is not None,
                     timeout=START_S, what="the bot to say where it listens")  # fmt: skip
        assert process.poll() is None, f"the bot exited:\n{served.output()}"
        base = f"http://127.0.0.1:{port}"
        until(lambda: _healthy(base) or process.poll() is not None, timeout=START_S,
              what="the bot to listen")  # fmt: skip
        assert process.poll() is None, f"the bot exited:\n{served.output()}"
        yield served, base + "/slack/events"
    finally:
        stop(process)
        engine.dispose()


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def _healthy(base: str) -> bool:
    try:
        return bool(health(base)["ok"])
    except OSError:
        return False
