"""A decision with more than 100 options: a menu that searches them as people type.

Slack's static menu holds 100 options at most. A decision with more gets an
`external_select`: Slack asks the bot for the options to show (a signed
`block_suggestion` request to the options load URL, the app's events URL here) with the
text typed so far, and the bot answers with the first 100 options that match. The
chosen option arrives as any menu choice does (ids.DECIDE_SEARCH, a block_actions
payload), and decides the gate. The interaction id travels in the block_id.

This is the one listener that reads the database before its ack: the ack carries the
options, and Slack waits up to 3 s for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.slack import ids
from bot.slack.text import MAX_OPTION_TEXT, MAX_SELECT_OPTIONS, plain
from orchestrator.protocol import InteractionView

Lookup = Callable[[str], InteractionView | None]


def search_menu(interaction: InteractionView) -> dict[str, Any]:
    """The menu element of a decision with too many options for a static menu."""
    return {
        "type": "external_select",
        "action_id": ids.DECIDE_SEARCH,
        "placeholder": plain(f"Type to search {len(interaction.options)} options…"),
        "min_query_length": 0,  # opened without typing: the first 100
    }


def suggest(lookup: Lookup, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The options matching what was typed (label or value, any case), at most 100;
    none for a question that is closed or unknown."""
    block_id = str(payload.get("block_id", ""))
    if not block_id.startswith(ids.GATE_BLOCK_PREFIX):
        return []
    interaction = lookup(block_id.removeprefix(ids.GATE_BLOCK_PREFIX))
    if interaction is None or interaction.status != "pending":
        return []
    typed = str(payload.get("value") or "").strip().casefold()
    found = []
    for n, option in enumerate(interaction.options):
        if typed in option.label.casefold() or typed in str(option.value).casefold():
            found.append({"text": plain(option.label, MAX_OPTION_TEXT),
                          "value": ids.decide_option_value(n, option.value)})  # fmt: skip
            if len(found) == MAX_SELECT_OPTIONS:
                break
    return found
