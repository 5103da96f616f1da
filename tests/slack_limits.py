"""Slack's Block Kit limits as a checker: what Slack would refuse, as a list of problems.

Written from Slack's Block Kit reference, independently of bot/slack/text.py, so
renderer tests and the Web API double do not just agree with the code they check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# chat.postMessage answers msg_blocks_too_long somewhere above this much text in total.
MESSAGE_TEXT_TOTAL = 12_000

_MAX_OPTIONS = {"static_select": 100, "radio_buttons": 10, "checkboxes": 10, "overflow": 5}


def message_problems(message: Mapping[str, Any]) -> list[str]:
    """Problems of a chat.postMessage/chat.update `text` + `blocks`."""
    problems: list[str] = []
    blocks = message.get("blocks")
    text = message.get("text")
    if not blocks and not text:
        problems.append("no_text: a message needs text or blocks")
    if isinstance(text, str) and len(text) > 40_000:
        problems.append(f"msg_too_long: text of {len(text)} characters")
    if blocks:
        problems += block_problems(blocks, max_blocks=MESSAGE_BLOCKS)
        total = text_size(blocks)
        if total > MESSAGE_TEXT_TOTAL:
            problems.append(f"msg_blocks_too_long: {total} characters of text in blocks")
    return problems


def view_problems(view: Mapping[str, Any]) -> list[str]:
    """Problems of a views.open/update/publish `view`."""
    problems: list[str] = []
    if view.get("type") not in ("modal", "home"):
        problems.append(f"view type {view.get('type')!r}")
    for key in ("title", "submit", "close"):
        if key in view:
            problems += _text(view[key], 24, f"view.{key}", plain_only=True)
    if view.get("type") == "modal" and "title" not in view:
        problems.append("a modal needs a title")
    problems += _length(view.get("private_metadata"), 3000, "private_metadata")
    problems += _length(view.get("callback_id"), 255, "callback_id")
    blocks = view.get("blocks") or []
    problems += block_problems(blocks, max_blocks=VIEW_BLOCKS)
    if any(b.get("type") == "input" for b in blocks) and "submit" not in view:
        problems.append("a modal with inputs needs a submit button")
    return problems


def block_problems(blocks: Any, *, max_blocks: int) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"must be less than {max_blocks + 1} items [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for n, block in enumerate(blocks):
        where = f"/blocks/{n}"
        block_id = block.get("block_id")
        if block_id is not None:
            problems += _length(block_id, 255, f"{where}/block_id")
            if block_id in block_ids:
                problems.append(f"{where}: block_id {block_id!r} used twice")
            block_ids.add(block_id)
        problems += _block(block, where)
    return problems


def _block(block: Mapping[str, Any], where: str) -> list[str]:
    kind = block.get("type")
    problems: list[str] = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{where}: a section needs text or fields")
        if "text" in block:
            problems += _text(block["text"], 3000, f"{where}/text")
        fields = block.get("fields") or []
        if len(fields) > 10:
            problems.append(f"{where}/fields: more than 10")
        for i, field in enumerate(fields):
            problems += _text(field, 2000, f"{where}/fields/{i}")
        if "accessory" in block:
            problems += _element(block["accessory"], f"{where}/accessory")
    elif kind == "header":
        problems += _text(block.get("text"), 150, f"{where}/text", plain_only=True)
    elif kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 10:
            problems.append(f"{where}/elements: {len(elements)} (1 to 10)")
        for i, element in enumerate(elements):
            if element.get("type") in ("mrkdwn", "plain_text"):
                problems += _text(element, 3000, f"{where}/elements/{i}")
    elif kind == "actions":
        problems += _actions(block, where)
    elif kind == "input":
        problems += _text(block.get("label"), 2000, f"{where}/label", plain_only=True)
        if "hint" in block:
            problems += _text(block["hint"], 2000, f"{where}/hint", plain_only=True)
        problems += _element(block.get("element") or {}, f"{where}/element")
    elif kind not in ("divider", "image", "rich_text", "file", "video", "markdown"):
        problems.append(f"{where}: unknown block type {kind!r}")
    return problems


def _actions(block: Mapping[str, Any], where: str) -> list[str]:
    elements = block.get("elements") or []
    problems: list[str] = []
    if not 1 <= len(elements) <= 25:
        problems.append(f"{where}/elements: {len(elements)} (1 to 25)")
    action_ids = [e.get("action_id") for e in elements if e.get("action_id")]
    if len(action_ids) != len(set(action_ids)):
        problems.append(f"{where}: action_ids repeat within the block")
    for i, element in enumerate(elements):
        problems += _element(element, f"{where}/elements/{i}")
    return problems


def _element(element: Mapping[str, Any], where: str) -> list[str]:
    kind = element.get("type")
    problems = _length(element.get("action_id"), 255, f"{where}/action_id")
    if kind == "button":
        problems += _text(element.get("text"), 75, f"{where}/text", plain_only=True)
        problems += _length(element.get("value"), 2000, f"{where}/value")
    if "placeholder" in element:
        problems += _text(element["placeholder"], 150, f"{where}/placeholder", plain_only=True)
    if kind in _MAX_OPTIONS:
        options = element.get("options") or []
        if not 1 <= len(options) <= _MAX_OPTIONS[kind]:
            problems.append(f"{where}/options: {len(options)} (1 to {_MAX_OPTIONS[kind]})")
        for i, option in enumerate(options):
            problems += _text(option.get("text"), 75, f"{where}/options/{i}/text")
            problems += _length(option.get("value"), 150, f"{where}/options/{i}/value")
        initial = element.get("initial_option")
        if initial is not None and initial not in options:
            problems.append(f"{where}/initial_option is not one of the options")
    if kind == "plain_text_input":
        problems += _length(element.get("initial_value"), 3000, f"{where}/initial_value")
    if kind == "number_input" and element.get("initial_value") is not None:
        try:
            float(element["initial_value"])
        except ValueError:
            problems.append(f"{where}/initial_value is not a number")
    if "confirm" in element:
        problems += _confirm(element["confirm"], f"{where}/confirm")
    return problems


def _confirm(confirm: Mapping[str, Any], where: str) -> list[str]:
    return [
        *_text(confirm.get("title"), 100, f"{where}/title", plain_only=True),
        *_text(confirm.get("text"), 300, f"{where}/text"),
        *_text(confirm.get("confirm"), 30, f"{where}/confirm", plain_only=True),
        *_text(confirm.get("deny"), 30, f"{where}/deny", plain_only=True),
    ]


def _text(obj: Any, limit: int, where: str, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, Mapping) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: must be more than 0 characters"]
    return _length(text, limit, where)


def _length(value: Any, limit: int, where: str) -> list[str]:
    if value is not None and len(str(value)) > limit:
        return [f"{where}: {len(str(value))} characters, more than {limit}"]
    return []


def text_size(blocks: Any) -> int:
    """Characters in every `text` string of `blocks`, however deep."""
    if isinstance(blocks, Mapping):
        own = len(blocks["text"]) if isinstance(blocks.get("text"), str) else 0
        return own + sum(text_size(v) for v in blocks.values() if not isinstance(v, str))
    if isinstance(blocks, list):
        return sum(text_size(v) for v in blocks)
    return 0
