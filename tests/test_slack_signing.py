"""Signed requests as Slack sends them, checked by slack_sdk and fed through a real Bolt app
whose Web API is the double: the payloads our renderers produce come back as we parse them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_double import SlackDouble
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from slack_signing import (
    SIGNING_SECRET,
    action_from_blocks,
    block_actions,
    fill_view,
    signature,
    signed_headers,
    slash_command,
    view_submission,
)

from bot.slack import ids, modals, submissions
from bot.slack.blocks import render_interaction
from bot.slack.commands import Run, parse_command
from orchestrator.interactions import input_field
from orchestrator.protocol import InteractionView, RunView
from orchestrator.workflow.gate_definitions import Option

RUN = RunView("r-1", "deploy", "waiting", {"service": "api"}, "U0ALICE")
FIELDS = (
    {"name": "ticket", "type": "text", "required": True, "choices": [], "label": ""},
    {"name": "minutes", "type": "number", "required": False, "choices": [], "label": ""},
)


def test_signature_matches_slack_sdks_verifier():
    body = slash_command("run hello")
    now = int(time.time())
    headers = signed_headers(body, timestamp=now)
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert headers["X-Slack-Signature"] == verifier.generate_signature(timestamp=str(now),
                                                                       body=body)  # fmt: skip
    assert verifier.is_valid(body, str(now), headers["X-Slack-Signature"])
    old = now - 600
    assert not verifier.is_valid(body, str(old), signature(body, secret=SIGNING_SECRET,
                                                           timestamp=old))  # fmt: skip


@pytest.fixture
def bolt() -> Iterator[tuple[App, list[Any]]]:
    """A Bolt app on the double that records what each listener received."""
    seen: list[Any] = []
    with SlackDouble() as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        app = App(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)

        @app.command("/ops")
        def command(ack: Ack, command: dict) -> None:
            ack()
            seen.append(parse_command(command["text"]))

        @app.action(ids.APPROVE)
        @app.action(ids.DECIDE_PATTERN)
        def clicked(ack: Ack, action: dict, body: dict) -> None:
            ack()
            seen.append((body["user"]["id"], ids.decode_action(action)))

        @app.view(ids.INPUT_VIEW)
        def submitted(ack: Ack, view: dict) -> None:
            meta = ids.decode_metadata(view["private_metadata"])
            interaction = input_gate(meta["interaction"])
            values = submissions.parse_input_submission(interaction, view["state"]["values"])
            errors = submissions.validate_input_submission(interaction, values)
            ack(**submissions.errors_response(errors)) if errors else ack()
            seen.append(values)

        assert slack.calls("auth.test")  # Bolt checked the token against the double
        yield app, seen


def input_gate(iid: str = "i-0000input000") -> InteractionView:
    return InteractionView(iid, "r-1", "details", "input", "gate", "Ticket?", "pending",
                           fields=tuple(map(input_field, FIELDS)))  # fmt: skip


def dispatch(app: App, body: str, **sign: Any) -> tuple[int, str]:
    response = app.dispatch(BoltRequest(body=body, headers=signed_headers(body, **sign)))
    return response.status, response.body


def test_slash_command_reaches_the_listener_and_parses(bolt):
    app, seen = bolt
    status, _ = dispatch(app, slash_command('run hello name="tom & jerry <3>"'))
    assert status == 200
    assert seen == [Run("hello", {"name": "tom & jerry <3>"})]


def test_a_click_on_a_rendered_approve_button_decodes_to_its_interaction(bolt):
    app, seen = bolt
    gate = InteractionView("i-00approve00", "r-1", "approve", "approval", "gate", "Go?", "pending")
    message = render_interaction(RUN, gate)
    action = action_from_blocks(message["blocks"], ids.APPROVE)
    assert dispatch(app, block_actions([action], user_id="U0BOB", message=message))[0] == 200
    assert seen == [("U0BOB", ids.ActionRef(ids.APPROVE, "i-00approve00"))]


def test_decision_button_and_menu_clicks_decode_to_the_option(bolt):
    app, seen = bolt
    few = tuple(Option(f"v{i}", f"L{i}") for i in range(3))
    many = tuple(Option(f"v{i}", f"L{i}") for i in range(8))
    for options, action_id, pick in ((few, "opsloop.decide.2", None),
                                     (many, ids.DECIDE_SELECT, '{"n":6,"v":"v6"}')):  # fmt: skip
        gate = InteractionView("i-0000decide0", "r-1", "pick", "decision", "gate", "Which?",
                               "pending", options=options)  # fmt: skip
        blocks = render_interaction(RUN, gate)["blocks"]
        action = action_from_blocks(blocks, action_id, option_value=pick)
        assert dispatch(app, block_actions([action]))[0] == 200
    assert [ref for _, ref in seen] == [
        ids.ActionRef(ids.DECIDE, "i-0000decide0", "v2", 2),
        ids.ActionRef(ids.DECIDE, "i-0000decide0", "v6", 6),
    ]


def test_input_modal_submission_is_parsed_and_errors_go_back_inline(bolt):
    app, seen = bolt
    view = modals.input_modal(input_gate())
    good = fill_view(view, {"field.ticket": "OPS-1", "field.minutes": "30"})
    assert dispatch(app, view_submission(view, good)) == (200, "")
    bad = fill_view(view, {"field.ticket": None})
    status, body = dispatch(app, view_submission(view, bad))
    assert status == 200
    assert json.loads(body) == {"response_action": "errors",
                                "errors": {"field.ticket": "This field is required."}}  # fmt: skip
    assert seen == [{"ticket": "OPS-1", "minutes": 30}, {"ticket": None, "minutes": None}]


@pytest.mark.parametrize(
    "sign",
    [
        {"secret": "not-the-secret"},
        {"timestamp": int(time.time()) - 6 * 60},  # older than Slack's 5 minutes
    ],
)
def test_bad_signatures_and_stale_timestamps_get_401_and_reach_no_listener(bolt, sign):
    app, seen = bolt
    assert dispatch(app, slash_command("list"), **sign)[0] == 401
    assert seen == []
