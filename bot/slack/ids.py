"""Stable identifiers of what people click and submit, and what each click carries.

Listeners are registered on these strings, and messages already posted keep
them: renaming one strands the buttons of every gate that is still open.

Buttons and menus on gate messages (block_actions):

    action_id                     carries                               effect
    opsloop.approve               value: interaction id                 approve
    opsloop.reject                value: interaction id                 reject (after a confirm)
    opsloop.reject_with_reason    value: interaction id                 open the reject modal
    opsloop.approve_with_changes  value: interaction id                 open the edit-params modal
    opsloop.decide.<n>            value: {"i": id, "n": n, "v": value}  pick option n (button)
    opsloop.decide.select         selected_option.value: {"n", "v"};    pick an option (menu)
                                  the interaction id is in block_id
    opsloop.decide.search         as opsloop.decide.select; a menu     pick an option (over 100:
                                  whose options Slack asks the bot     bot/slack/suggestions.py)
                                  for (block_suggestion)
    opsloop.input.open            value: interaction id                 open the input modal

Buttons of `/ops schedules` (block_actions):

    opsloop.schedule.pause        value: schedule id                    pause it
    opsloop.schedule.resume       value: schedule id                    resume it

Every actions block of a gate message has block_id `opsloop.gate.<interaction id>`.
Register the decision buttons with `DECIDE_PATTERN` (a regex), the rest by string.

Modals (view_submission), by callback_id; private_metadata is JSON (`decode_metadata`):

    opsloop.input          an input gate's form       {"interaction": id, "run": run id, ...}
    opsloop.reject_reason  reject with a reason       {"interaction": id, "run": run id, ...}
    opsloop.params         `/ops run` missing params  {"workflow": name, "hidden": {...}, ...}
    opsloop.edit_params    approve with changes       {"interaction": id, "run": run id, ...}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.slack.text import MAX_BUTTON_VALUE, MAX_ID, MAX_OPTION_VALUE, MAX_PRIVATE_METADATA

APPROVE = "opsloop.approve"
REJECT = "opsloop.reject"
REJECT_WITH_REASON = "opsloop.reject_with_reason"
APPROVE_WITH_CHANGES = "opsloop.approve_with_changes"
DECIDE = "opsloop.decide"  # buttons are DECIDE + ".<n>", the menu DECIDE_SELECT
DECIDE_SELECT = "opsloop.decide.select"
DECIDE_SEARCH = "opsloop.decide.search"  # an external_select: more than 100 options
DECIDE_PATTERN = re.compile(r"^opsloop\.decide\.(?:\d+|select|search)$")
OPEN_INPUT = "opsloop.input.open"
SCHEDULE_PAUSE = "opsloop.schedule.pause"
SCHEDULE_RESUME = "opsloop.schedule.resume"
SCHEDULE_ACTIONS = frozenset({SCHEDULE_PAUSE, SCHEDULE_RESUME})

GATE_BLOCK_PREFIX = "opsloop.gate."

INPUT_VIEW = "opsloop.input"
REJECT_REASON_VIEW = "opsloop.reject_reason"
PARAMS_VIEW = "opsloop.params"
EDIT_PARAMS_VIEW = "opsloop.edit_params"

ACTION_IDS: frozenset[str] = frozenset(
    {APPROVE, REJECT, REJECT_WITH_REASON, APPROVE_WITH_CHANGES, DECIDE_SELECT, OPEN_INPUT}
)
CALLBACK_IDS: frozenset[str] = frozenset(
    {INPUT_VIEW, REJECT_REASON_VIEW, PARAMS_VIEW, EDIT_PARAMS_VIEW}
)


class PayloadError(ValueError):
    """A click or submission that none of our messages could have produced."""


@dataclass(frozen=True)
class ActionRef:
    """What a click on a gate message asks for.

    `action` is one of the constants above, with DECIDE for every decision button
    and the menu. For a decision, `choice` is the option's value when the click
    carried it and `index` its position among the interaction's options (use it
    when an option's value was too long to travel, then `choice` is None).
    """

    action: str
    interaction_id: str
    choice: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class ScheduleRef:
    """A click on a schedule's Pause or Resume button."""

    action: str
    schedule_id: str


def schedule_value(schedule_id: str) -> str:
    return _checked(schedule_id, MAX_BUTTON_VALUE, "button value")


def decide_action_id(index: int) -> str:
    return f"{DECIDE}.{index}"


def gate_block_id(interaction_id: str) -> str:
    return _checked(GATE_BLOCK_PREFIX + interaction_id, MAX_ID, "block_id")


def interaction_value(interaction_id: str) -> str:
    """The value of an approve/reject/open button: the interaction id itself."""
    return _checked(interaction_id, MAX_BUTTON_VALUE, "button value")


def decide_value(interaction_id: str, index: int, choice: str) -> str:
    """A decision button's value; the option's value is left out if it would not fit."""
    value = _json({"i": interaction_id, "n": index, "v": choice})
    if len(value) > MAX_BUTTON_VALUE:
        value = _json({"i": interaction_id, "n": index})
    return _checked(value, MAX_BUTTON_VALUE, "button value")


def decide_option_value(index: int, choice: str) -> str:
    """A menu option's value (150 chars at most); the interaction id is in the block_id."""
    value = _json({"n": index, "v": choice})
    return value if len(value) <= MAX_OPTION_VALUE else _json({"n": index})


def decode_action(action: Mapping[str, Any]) -> ActionRef | ScheduleRef:
    """Parse one element of a block_actions payload's `actions` list."""
    action_id = str(action.get("action_id", ""))
    if action_id in SCHEDULE_ACTIONS:
        value = action.get("value")
        if not isinstance(value, str) or not value:
            raise PayloadError(f"{action_id} carries no schedule id")
        return ScheduleRef(action_id, value)
    if DECIDE_PATTERN.match(action_id):
        return _decode_decision(action_id, action)
    if action_id in ACTION_IDS:
        value = action.get("value")
        if not isinstance(value, str) or not value:
            raise PayloadError(f"{action_id} carries no interaction id")
        return ActionRef(action_id, value)
    raise PayloadError(f"unknown action_id {action_id!r}")


def _decode_decision(action_id: str, action: Mapping[str, Any]) -> ActionRef:
    if action_id in (DECIDE_SELECT, DECIDE_SEARCH):
        selected = action.get("selected_option") or {}
        data = _loads(selected.get("value"))
        block_id = str(action.get("block_id", ""))
        if not block_id.startswith(GATE_BLOCK_PREFIX):
            raise PayloadError(f"a decision menu in block {block_id!r}, not a gate's")
        data["i"] = block_id.removeprefix(GATE_BLOCK_PREFIX)
    else:
        data = _loads(action.get("value"))
    iid, index, choice = data.get("i"), data.get("n"), data.get("v")
    if not isinstance(iid, str) or not iid or not isinstance(index, int):
        raise PayloadError(f"{action_id} carries no interaction id and option")
    return ActionRef(DECIDE, iid, choice if isinstance(choice, str) else None, index)


def encode_metadata(data: Mapping[str, Any]) -> str:
    """A modal's private_metadata; ValueError if it would pass Slack's 3000 characters."""
    return _checked(_json(dict(data)), MAX_PRIVATE_METADATA, "private_metadata")


def decode_metadata(text: str | None) -> dict[str, Any]:
    """The dict `encode_metadata` wrote; PayloadError for anything else."""
    return _loads(text or "{}")


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _loads(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {str(text)[:80]!r}")
    return data


def _checked(text: str, limit: int, what: str) -> str:
    if len(text) > limit:
        raise ValueError(f"{what} of {len(text)} characters passes Slack's limit of {limit}")
    return text
