"""The Slack bot end to end in Socket Mode: `opsloop serve` as a real process.

The bot (tests/serve_process.py) calls apps.connections.open on the Slack double
(tests/slack_double.py) and connects to the double's WebSocket. The test pushes
envelopes over that socket as Slack does (slash commands, clicks), reads the acks
the bot sends back, and checks what the bot posted through the Web API and what it
stored in the database.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack import ids
from orchestrator.queries import run_view
from tests.polling import until
from tests.sample_workflows import GATED
from tests.serve_process import CHANNEL, START_S, Served, serving, start_bot, stop
from tests.slack_double import SlackDouble


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "workflows"
    directory.mkdir()
    (directory / "gated.yml").write_text(GATED)
    return directory


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


@pytest.fixture
def served(db_url: str, flows: Path, tmp_path: Path, slack: SlackDouble) -> Iterator[Served]:
    with serving(slack, db_url, flows, tmp_path / "bot.log") as running:
        yield running


def test_command_and_approve_click_over_the_socket_finish_the_run(served: Served) -> None:
    slack = served.slack
    [opened] = slack.calls("apps.connections.open")
    assert opened.ok and opened.token == slack.app_token  # the app-level token, not the bot's

    envelope = served.command("run gated service=api")
    assert slack.wait_for_ack(envelope).payload is None  # a bare ack, the work follows
    run_id = served.run_id()
    assert served.board(run_id).channel == CHANNEL
    gate = served.gate(run_id, "Ship api?")
    buttons = [e["action_id"] for b in gate.blocks or [] if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    assert ids.APPROVE in buttons and ids.REJECT in buttons
    [started] = until(lambda: slack.responses("cmd"), what="the command's reply")
    assert run_id in started["text"]

    click = served.click(gate, ids.APPROVE, "U0BOSS")
    slack.wait_for_ack(click)
    until(lambda: served.status(run_id) == "succeeded", what="the run to finish")
    edited = until(lambda: (m := slack.message(CHANNEL, gate.ts)).edits
                   and "U0BOSS" in json.dumps(m.blocks) and m, what="the gate edit")  # fmt: skip
    assert not [b for b in edited.blocks or [] if b["type"] == "actions"]  # buttons gone
    until(lambda: "succeeded" in (slack.message(CHANNEL, served.board(run_id).ts).text or ""),
          what="the board's final state")  # fmt: skip
    steps = {s.step_id: s.status for s in run_view(served.engine, run_id).steps}
    assert steps == {"build": "succeeded", "approve": "succeeded", "ship": "succeeded"}
    assert served.process.poll() is None, served.output()


def test_answers_ride_in_the_ack_and_a_refreshed_socket_keeps_serving(served: Served) -> None:
    slack = served.slack
    help_ack = slack.wait_for_ack(served.command("help"))
    assert help_ack.payload is not None and "Usage" in help_ack.payload["text"]
    assert help_ack.payload["response_type"] == "ephemeral"

    served.command("run gated service=web")
    run_id = served.run_id()
    gate = served.gate(run_id, "Ship web?")

    # Slack asks for a reconnect every few hours: the bot must fetch a new URL and carry on
    slack.push_disconnect()
    slack.wait_for_socket(2)
    until(lambda: slack.socket_connections() == 1, what="the old socket to close")
    assert len(slack.calls("apps.connections.open", ok=True)) == 2
    refused = served.click(gate, ids.APPROVE, "U0EVE", reply="eve")
    slack.wait_for_ack(refused)
    [answer] = until(lambda: slack.responses("eve"), what="the refusal")
    assert "may not answer" in answer["text"]
    slack.wait_for_ack(served.click(gate, ids.APPROVE, "U0DEPUTY"))
    until(lambda: served.status(run_id) == "succeeded", what="the run to finish")


def test_a_dropped_socket_is_back_within_a_ping_interval(
    sqlite_url: str, flows: Path, tmp_path: Path, slack: SlackDouble
) -> None:
    # slack_sdk's built-in client reconnects on its next health check (Bolt: every 10 s),
    # not on the close itself; the database plays no part, so SQLite only
    with serving(slack, sqlite_url, flows, tmp_path / "bot.log") as served:
        slack.close_sockets()
        slack.wait_for_socket(2, timeout=60)  # the next health check (10 s), then a connect
        assert len(slack.calls("apps.connections.open", ok=True)) == 2
        slack.wait_for_ack(served.command("run gated service=api"))  # on the new socket
        served.gate(served.run_id(), "Ship api?")


def test_ctrl_c_leaves_the_socket_and_stops_gracefully_with_0(served: Served) -> None:
    # the first Ctrl-C stops as SIGTERM does (docs/operations.md): exit 0, not 130
    until(lambda: "connected in Socket Mode" in served.output(), what="the bot to say so")
    assert stop(served.process, signal.SIGINT) == 0, served.output()
    assert served.slack.socket_connections() == 0
    assert "Traceback" not in served.output()


def test_a_refused_app_token_is_one_line_and_exit_2(
    sqlite_url: str, flows: Path, tmp_path: Path, slack: SlackDouble
) -> None:
    log = tmp_path / "bot.log"
    process = start_bot(slack, sqlite_url, flows, log, app_token="xapp-1-revoked")
    try:
        assert process.wait(START_S) == 2
    finally:
        stop(process)
    output = log.read_text()
    assert "opsloop: Slack refused SLACK_APP_TOKEN (invalid_auth)" in output
    assert "Traceback" not in output and "connected in Socket Mode" not in output
    assert slack.socket_connections() == 0


# -- the double's Socket Mode, driven by slack_sdk's own client in this process ----------


def test_the_double_speaks_socket_mode_to_slack_sdks_client(slack: SlackDouble) -> None:
    web = WebClient(token=slack.token, base_url=slack.api_url, timeout=10)
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        web.apps_connections_open(app_token=slack.token)
    received: list[SocketModeRequest] = []

    def listener(client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        answer: Mapping[str, Any] | None = {"text": "ok"} if request.type != "interactive" else None
        client.send_socket_mode_response(SocketModeResponse(request.envelope_id, answer))

    client = SocketModeClient(
        app_token=slack.app_token, web_client=web, auto_reconnect_enabled=False
    )
    client.socket_mode_request_listeners.append(listener)
    try:
        client.connect()
        slack.wait_for_socket()
        command = slack.push_slash_command({"command": "/ops", "text": "help"})
        click = slack.push_interactive({"type": "block_actions", "actions": []})
        assert slack.wait_for_ack(command).payload == {"text": "ok"}
        assert slack.wait_for_ack(click).payload is None
        slack.close_sockets()  # so the client's close() need not wait out its 3 s receive
        until(lambda: not client.is_connected(), what="the client to see the close")
    finally:
        client.close()
    # The client hands each envelope to its own listener thread: any order.
    assert sorted((r.type, r.accepts_response_payload) for r in received) == [
        ("interactive", False), ("slash_commands", True)]  # fmt: skip
    assert [e["envelope_id"] for e in slack.envelopes()] == [command, click]
    until(lambda: slack.socket_connections() == 0, what="the socket to close")
