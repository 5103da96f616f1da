"""A decision with more than 100 options: a menu that searches all of them, over real HTTP.

Slack shows at most 100 options in a menu. The gate message gets an external_select;
Slack asks the bot for options (signed block_suggestion requests to the events URL) with
what was typed; the option picked, even the 150th, decides the gate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa

from bot.slack import ids
from bot.slack.http_transport import http_in_background
from orchestrator.clock import FakeClock
from tests.bot_harness import running_test_bot
from tests.polling import until
from tests.serve_process import serving
from tests.slack_double import Message, SlackDouble
from tests.slack_signing import block_actions, block_suggestion, post_signed, slash_command

CHANNEL = "C0OPS"
HOSTS = [f"host-{n:03d}" for n in range(150)]
MANY = "\n".join([
    "name: many",
    "steps:",
    "  - id: pick",
    "    decision:",
    '      message: "Which host?"',
    "      options:",
    *(f'        - {{value: {h}, label: "Host {h[5:]}"}}' for h in HOSTS),
])  # fmt: skip


@pytest.fixture
def bot(db_url: str, tmp_path: Path) -> Iterator[tuple[str, object, SlackDouble]]:
    slack = SlackDouble().start()
    clock = FakeClock(datetime.now(UTC))
    try:
        with (
            running_test_bot(db_url, tmp_path, slack, {"many": MANY}, clock, CHANNEL) as bot,
            http_in_background(bot.wsgi, threads=4) as url,
        ):
            yield url, bot, slack
    finally:
        slack.stop()


def gate_message(slack: SlackDouble) -> Message:
    return until(lambda: next((m for m in slack.messages(CHANNEL) + [
        r for p in slack.messages(CHANNEL) for r in slack.thread(CHANNEL, p.ts)]
        if "Which host?" in json.dumps(m.blocks)), None), what="the gate message")  # fmt: skip


def suggested(url: str, block_id: str, typed: str) -> list[dict]:
    status, text = post_signed(url, block_suggestion(ids.DECIDE_SEARCH, block_id, typed))
    assert status == 200, text
    return json.loads(text)["options"]


def test_every_one_of_150_options_can_be_found_and_picked(bot) -> None:
    url, served, slack = bot
    body = slash_command("run many", channel_id=CHANNEL, response_url=slack.response_url("c"))
    assert post_signed(url, body)[0] == 200
    gate = gate_message(slack)
    [block] = [b for b in gate.blocks or [] if b["type"] == "actions"]
    [menu] = block["elements"]
    assert menu["type"] == "external_select" and menu["action_id"] == ids.DECIDE_SEARCH
    assert "150 options" in json.dumps(menu)

    first = suggested(url, block["block_id"], "")
    assert [o["text"]["text"] for o in first] == [f"Host {n:03d}" for n in range(100)]
    found = suggested(url, block["block_id"], "HOST 14")  # any case
    assert [o["text"]["text"] for o in found] == [f"Host {n}" for n in range(140, 150)]
    assert [o["text"]["text"] for o in suggested(url, block["block_id"], "host-007")] == [
        "Host 007"]  # the value matches too  # fmt: skip
    assert suggested(url, "opsloop.gate.i-unknown", "") == []

    [picked] = [o for o in found if o["text"]["text"] == "Host 147"]
    action = {"action_id": ids.DECIDE_SEARCH, "block_id": block["block_id"],
              "type": "external_select", "selected_option": picked, "action_ts": "1.0"}  # fmt: skip
    click = block_actions([action], user_id="U0BOB", channel_id=CHANNEL, message_ts=gate.ts,
                          response_url=slack.response_url("pick"))  # fmt: skip
    assert post_signed(url, click)[0] == 200
    run_id = only_run(served)
    until(lambda: served.orch.view(run_id).status == "succeeded", what="the run to finish")
    [step] = served.orch.view(run_id).steps
    assert step.outputs["choice"] == "host-147"
    assert suggested(url, block["block_id"], "host") == []  # closed: nothing more to pick


def only_run(served) -> str:
    with served.orch.engine.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM workflow_run")).scalar_one()


def test_in_socket_mode_the_search_menu_is_answered_over_the_socket(
    db_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "many.yml").write_text(MANY)
    with SlackDouble() as slack, serving(slack, db_url, flows, tmp_path / "bot.log") as served:
        slack.wait_for_ack(served.command("run many"))
        gate = served.gate(served.run_id(), "Which host?")
        [block] = [b for b in gate.blocks or [] if b["type"] == "actions"]
        body = block_suggestion(ids.DECIDE_SEARCH, block["block_id"], "149")
        ack = slack.wait_for_ack(slack.push_interactive(json.loads(parse_qs(body)["payload"][0])))
        assert [o["text"]["text"] for o in (ack.payload or {})["options"]] == ["Host 149"]


def test_the_same_search_twice_in_one_second_is_answered_both_times(bot) -> None:
    """Slack's block_suggestion carries no id or time of its own: a person who opens the menu,
    closes it and opens it again within a second sends the same body with the same timestamp
    (so the same signature). A search changes nothing; both get the options, not a 401."""
    url, _served, slack = bot
    body = slash_command("run many", channel_id=CHANNEL, response_url=slack.response_url("c"))
    assert post_signed(url, body)[0] == 200
    [block] = [b for b in gate_message(slack).blocks or [] if b["type"] == "actions"]
    search = block_suggestion(ids.DECIDE_SEARCH, block["block_id"], "")
    now = int(time.time())
    answers = [post_signed(url, search, timestamp=now) for _ in range(2)]
    assert [status for status, _ in answers] == [200, 200], answers
    assert len(json.loads(answers[1][1])["options"]) == 100
