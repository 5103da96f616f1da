"""Slack text: escaping, truncation, mentions, dates, and the size limits Block Kit enforces.

Slack rejects a whole message (`invalid_blocks`) when one field is too long, so
every renderer cuts its text with these helpers instead of trusting its input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

# Documented Block Kit limits (https://docs.slack.dev/reference/block-kit).
MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255  # action_id, block_id, callback_id
MAX_SELECT_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MODAL_TEXT = 24  # modal title, submit and close
MAX_PRIVATE_METADATA = 3000
MAX_LABEL = 2000
MAX_HINT = 2000
MAX_PLACEHOLDER = 150
MAX_INPUT_VALUE = 3000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
# Undocumented: chat.postMessage answers msg_blocks_too_long somewhere above ~12,000
# characters of text across all blocks, so messages stay well below that.
MESSAGE_TEXT_BUDGET = 10_000
# The notification / fallback `text` of a message.
MAX_FALLBACK_TEXT = 3000

ELLIPSIS = "…"
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")
# What a cut can leave half-written at the end: an entity ("&am") or a mention ("<@U12").
_PARTIAL_MARKUP = re.compile(r"&[a-z]{0,3}$|<[^>]*$")


def escape(text: object) -> str:
    """`text` with Slack's three control characters escaped, so it shows as typed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """`text` cut to at most `limit` characters, ending in `marker` when cut."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - len(marker), 0)]
    return (_PARTIAL_MARKUP.sub("", head) + marker)[:limit]


def truncate_tail(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """The last `limit` characters of `text`, starting with `marker` when cut."""
    if len(text) <= limit:
        return text
    return (marker + text[len(text) - max(limit - len(marker), 0) :])[-limit:] if limit else ""


def escaped(text: object, limit: int) -> str:
    """`text` escaped and cut to `limit` characters; the cut never splits an entity."""
    return _escaped_within(text, limit, lambda raw, keep: escape(raw[: max(keep, 0)]) + ELLIPSIS)


def escaped_tail(text: object, limit: int) -> str:
    """The end of `text`, escaped, in at most `limit` characters; never splits an entity."""
    return _escaped_within(
        text, limit,
        lambda raw, keep: ELLIPSIS + (escape(raw[len(raw) - keep :]) if keep > 0 else ""),
    )  # fmt: skip


def _escaped_within(text: object, limit: int, cut: Callable[[str, int], str]) -> str:
    """Escape `text`; while too long, `cut(raw, keep)` it to fewer raw characters (escaping
    can grow a kept character to several, so the keep shrinks until it fits)."""
    if limit < 1:
        return ""
    raw = str(text)
    out = escape(raw)
    keep = limit - len(ELLIPSIS)
    while len(out) > limit:
        out = cut(raw, keep)
        keep -= max(len(out) - limit, 1)
    return out


def one_line(text: object) -> str:
    """`text` with its whitespace runs (newlines included) folded into single spaces."""
    return " ".join(str(text).split())


def plain(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A plain_text object; Slack rejects empty ones, so "" becomes a single space."""
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def section(text: str, *, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = truncate(block_id, MAX_ID, "")
    return block


def context(*texts: str) -> dict[str, Any]:
    """A context block of mrkdwn elements (at most 10, each cut to fit)."""
    elements = [mrkdwn(t) for t in texts if t][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements or [mrkdwn(" ")]}


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button element; its text is one line, cut to fit."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": plain(one_line(text), MAX_BUTTON_TEXT),
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(one_line(text), MAX_HEADER_TEXT)}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def user_ref(who: str | None) -> str:
    """A mention for a Slack user id, the escaped text for anything else ("opsloop", "cli:bob")."""
    if not who:
        return "someone"
    return f"<@{who}>" if _USER.fullmatch(who) else escape(who)


def group_ref(group: str) -> str:
    """A mention for a Slack user-group id (S...), the escaped text otherwise."""
    return f"<!subteam^{group}>" if _GROUP.fullmatch(group) else escape(group)


def people_refs(users: Iterable[str], groups: Iterable[str] = ()) -> str:
    """ "<@U1>, <@U2> and <!subteam^S1>"; empty when nobody is listed."""
    return join_words([*(user_ref(u) for u in users), *(group_ref(g) for g in groups)])


def join_words(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def date_ref(when: datetime) -> str:
    """Slack's date formatting: each reader sees the time in their own time zone."""
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def code_block(text: str, limit: int = MAX_SECTION_TEXT) -> str:
    """`text` in a ``` block that fits in `limit` characters, keeping the end (where errors are)."""
    # A ``` inside the text would end the block early; a zero-width space defuses it.
    body = escaped_tail(text.rstrip("\n").replace("```", "`\u200b``"), max(limit - 8, 1))
    return f"```\n{body}\n```"


def format_value(value: Any) -> str:
    """A parameter or output value as one line of text (strings as they are, the rest as JSON)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def key_value_line(name: str, value: Any, limit: int) -> str:
    """ "`name`: value" with both escaped, the value cut to `limit` characters."""
    return f"`{escaped(name, 64)}`: {escaped(format_value(value), limit)}"


def pack_lines(
    lines: Sequence[str],
    *,
    max_chunks: int,
    limit: int = MAX_SECTION_TEXT,
    more: str = "… and {n} more",
) -> list[str]:
    """Join `lines` into at most `max_chunks` texts of at most `limit` characters each.

    Lines that do not fit are dropped from the end and counted in a last `more` line.
    """
    chunks: list[list[str]] = []
    sizes: list[int] = []
    for index, raw in enumerate(lines):
        line = truncate(raw, limit)
        if chunks and sizes[-1] + 1 + len(line) <= limit:
            chunks[-1].append(line)
            sizes[-1] += 1 + len(line)
        elif len(chunks) < max_chunks:
            chunks.append([line])
            sizes.append(len(line))
        else:
            _add_more_line(chunks, sizes, len(lines) - index, more, limit)
            break
    return ["\n".join(chunk) for chunk in chunks]


def _add_more_line(
    chunks: list[list[str]], sizes: list[int], left: int, more: str, limit: int
) -> None:
    last = chunks[-1]
    note = more.format(n=left)
    while last and sizes[-1] + 1 + len(note) > limit:
        sizes[-1] -= len(last.pop()) + (1 if last else 0)
        left += 1
        note = more.format(n=left)
    last.append(truncate(note, limit))
    sizes[-1] += len(note) + 1


def block_text_size(blocks: Any) -> int:
    """Characters of text in `blocks`: what Slack's cumulative message limit counts."""
    if isinstance(blocks, dict):
        own = len(blocks["text"]) if isinstance(blocks.get("text"), str) else 0
        return own + sum(block_text_size(v) for v in blocks.values() if not isinstance(v, str))
    if isinstance(blocks, list):
        return sum(block_text_size(v) for v in blocks)
    return 0
