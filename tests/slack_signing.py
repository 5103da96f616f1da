"""Requests to the bot's /slack/events exactly as Slack sends them: bodies and signatures.

    body = slash_command("run deploy service=api", user_id="U0ALICE")
    status, text = post_signed(bot_url + "/slack/events", body, secret=SECRET)

Bodies are form-encoded like Slack's: slash commands as fields, interactions
(block_actions, view_submission) as one `payload=` field holding JSON. The
signature is `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing
secret, which is what slack_sdk's SignatureVerifier (and so Bolt) checks.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"
FORM = "application/x-www-form-urlencoded"
_triggers = itertools.count(1)


def signature(body: str, *, secret: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = FORM,
) -> dict[str, str]:
    """The headers Slack sends with `body`; `timestamp` defaults to now (pass an old one to
    test replay protection)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(body, secret=secret, timestamp=ts),
    }


def post_signed(
    url: str,
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, str]:
    """POST a signed `body` to `url`; (HTTP status, response text), errors included."""
    all_headers = {**signed_headers(body, secret=secret, timestamp=timestamp), **(headers or {})}
    request = urllib.request.Request(url, data=body.encode(), headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def trigger_id() -> str:
    """A fresh trigger_id (Slack's are single use)."""
    return f"{next(_triggers)}.{int(time.time())}.trigger"


def slash_command(
    text: str,
    *,
    command: str = "/ops",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0OPS",
    team_id: str = "T0TEAM",
    response_url: str = "https://hooks.slack.com/commands/T0TEAM/1/x",
    trigger: str | None = None,
) -> str:
    """The form body of a slash command; Slack sends &, < and > in `text` as entities."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return urlencode({
        "token": "verification-token-unused", "team_id": team_id, "team_domain": "opsloop-test",
        "channel_id": channel_id, "channel_name": "ops", "user_id": user_id,
        "user_name": user_name, "command": command, "text": escaped, "api_app_id": "A0OPSLOOP",
        "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": trigger or trigger_id(),
    })  # fmt: skip


def block_actions(
    actions: Iterable[Mapping[str, Any]],
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0OPS",
    message: Mapping[str, Any] | None = None,
    message_ts: str = "1700000000.000001",
    team_id: str = "T0TEAM",
    response_url: str = "https://hooks.slack.com/actions/T0TEAM/1/x",
    trigger: str | None = None,
) -> str:
    """The form body of a click on a message: `actions` as built by `action_from_blocks`."""
    shown = {"type": "message", "ts": message_ts, "text": "", **(message or {})}
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": "A0OPSLOOP",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                      "is_ephemeral": False},
        "trigger_id": trigger or trigger_id(),
        "team": {"id": team_id, "domain": "opsloop-test"},
        "channel": {"id": channel_id, "name": "ops"},
        "message": shown,
        "response_url": response_url,
        "actions": [dict(a) for a in actions],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def block_suggestion(
    action_id: str, block_id: str, typed: str, *, user_id: str = "U0ALICE",
    channel_id: str = "C0OPS", message_ts: str = "1700000000.000001", team_id: str = "T0TEAM",
) -> str:  # fmt: skip
    """The form body Slack sends to the options load URL while someone types in an
    external_select menu of a message."""
    payload = {
        "type": "block_suggestion",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                      "is_ephemeral": False},
        "api_app_id": "A0OPSLOOP",
        "token": "verification-token-unused",
        "action_id": action_id,
        "block_id": block_id,
        "value": typed,
        "team": {"id": team_id, "domain": "opsloop-test"},
        "channel": {"id": channel_id, "name": "ops"},
        "message": {"type": "message", "ts": message_ts, "text": ""},
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def view_submission(
    view: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    user_id: str = "U0ALICE",
    team_id: str = "T0TEAM",
    view_id: str = "V00000001",
) -> str:
    """The form body of a modal's submission; `values` as built by `fill_view`."""
    submitted = {
        **view, "id": view.get("id", view_id), "team_id": team_id,
        "state": {"values": dict(values)}, "hash": "1.hash",
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
    }  # fmt: skip
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "opsloop-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": "A0OPSLOOP",
        "token": "verification-token-unused",
        "trigger_id": trigger_id(),
        "view": submitted,
        "response_urls": [],
    }
    return urlencode({"payload": json.dumps(payload)})


def action_from_blocks(
    blocks: Iterable[Mapping[str, Any]], action_id: str, *, option_value: str | None = None
) -> dict[str, Any]:
    """The `actions` element Slack sends when someone clicks the button `action_id` in
    `blocks` (or picks the option whose value is `option_value` in that menu)."""
    for block in blocks:
        for element in block.get("elements") or [block.get("accessory") or {}]:
            if element.get("action_id") != action_id:
                continue
            action = {"action_id": action_id, "block_id": block.get("block_id", ""),
                      "type": element["type"], "action_ts": f"{time.time():.6f}"}  # fmt: skip
            if element["type"] == "button":
                return {**action, "value": element.get("value", ""), "text": element["text"]}
            options = element.get("options") or []
            chosen = [o for o in options if o["value"] == option_value]
            if not chosen:
                raise LookupError(f"{action_id} has no option with value {option_value!r}")
            return {**action, "selected_option": chosen[0]}
    raise LookupError(f"no element with action_id {action_id!r} in the blocks")


def option_value_for(blocks: Iterable[Mapping[str, Any]], action_id: str, label: str) -> str:
    """The value of the option labelled `label` in the menu `action_id`."""
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                for option in element.get("options") or []:
                    if option["text"]["text"] == label:
                        return option["value"]
    raise LookupError(f"no option {label!r} in {action_id}")


def fill_view(view: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """`view.state.values` as Slack builds it when the inputs hold `answers` (block_id ->
    text, number, option value, or list of option values for checkboxes; None clears an
    input). Inputs not in `answers` keep their initial value, as they do in Slack."""
    values: dict[str, Any] = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element = block["element"]
        block_id = block["block_id"]
        answer = answers[block_id] if block_id in answers else _initial(element)
        values[block["block_id"]] = {element["action_id"]: _element_state(element, answer)}
    return values


def _initial(element: Mapping[str, Any]) -> Any:
    if "initial_option" in element:
        return element["initial_option"]["value"]
    if "initial_options" in element:
        return [o["value"] for o in element["initial_options"]]
    return element.get("initial_value")


def _element_state(element: Mapping[str, Any], answer: Any) -> dict[str, Any]:
    kind = element["type"]
    if kind in ("static_select", "radio_buttons"):
        if answer is None:
            return {"type": kind, "selected_option": None}
        options = [o for o in element.get("options") or [] if o["value"] == str(answer)]
        if not options:
            raise LookupError(f"no option {answer!r} among {element.get('options')}")
        return {"type": kind, "selected_option": options[0]}
    if kind == "checkboxes":
        chosen = [o for o in element.get("options") or [] if o["value"] in (answer or ())]
        return {"type": kind, "selected_options": chosen}
    return {"type": kind, "value": None if answer is None else str(answer)}
