"""Block Kit messages for gates: the question in the run's thread and its reminders.

While an interaction is open its message has buttons (ids.py says what each
carries); once it closes, the same message is re-rendered without them and says
who answered what and when. Pure, like blocks.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.slack import ids, suggestions
from bot.slack.text import (
    MAX_CONFIRM_TEXT,
    MAX_FALLBACK_TEXT,
    MAX_OPTION_TEXT,
    MAX_SECTION_TEXT,
    MAX_SELECT_OPTIONS,
    button,
    context,
    date_ref,
    escape,
    escaped,
    format_value,
    group_ref,
    join_words,
    key_value_line,
    one_line,
    pack_lines,
    people_refs,
    plain,
    section,
    truncate,
    user_ref,
)
from orchestrator.protocol import InteractionView, RunView

MAX_BUTTONS = 5  # a decision with more options gets a menu
UNKNOWN_ICON = ":grey_question:"

_TITLES = {"approval": "Approval needed", "decision": "Decision needed", "input": "Input needed"}
_KIND_ICONS = {"approval": ":raised_hand:", "decision": ":twisted_rightwards_arrows:",
               "input": ":memo:"}  # fmt: skip
_PARAMS_BUDGET = 1000
_PROMPT_BUDGET = 2500


def render_interaction(
    run: RunView, interaction: InteractionView, *, allow_edit_params: bool = False
) -> dict[str, Any]:
    """The gate message in the run's thread: buttons while open, the outcome once closed.

    `allow_edit_params` adds "Approve with changes" to an approval.
    """
    closed = interaction.status != "pending"
    blocks: list[dict[str, Any]] = [
        section(_gate_title(run, interaction)),
        section(escaped(interaction.prompt, _PROMPT_BUDGET) or "_no message_"),
        context(f"Params: {_params_inline(run.params)}"),
        context(*_gate_facts(run, interaction)),
    ]
    if interaction.kind == "approval" and interaction.required > 1:
        blocks.append(context(_quorum(interaction)))
    if closed:
        blocks += [section(text) for text in _outcome(interaction)]
    else:
        blocks += _gate_actions(interaction, allow_edit_params)
    return {"text": _gate_fallback(interaction, closed), "blocks": blocks}


def _gate_title(run: RunView, interaction: InteractionView) -> str:
    if interaction.purpose == "recovery":
        title, icon = "Recovery needed", ":warning:"
    else:
        title = _TITLES.get(interaction.kind, "Answer needed")
        icon = _KIND_ICONS.get(interaction.kind, ":raised_hand:")
    where = f"`{escaped(run.workflow, 100)}` run `{escaped(run.id, 80)}`"
    return f"{icon} *{title}* · {where} · step `{escaped(interaction.step_id, 80)}`"


def _params_inline(params: Mapping[str, Any]) -> str:
    if not params:
        return "_none_"
    text = " · ".join(key_value_line(k, v, 100) for k, v in params.items())
    return truncate(text, _PARAMS_BUDGET)


def _gate_facts(run: RunView, interaction: InteractionView) -> list[str]:
    facts = [f"Run started by {user_ref(run.started_by)}"]
    who = people_refs(interaction.allowed_users[:20], interaction.allowed_groups[:10])
    if who and len(interaction.allowed_users) > 20:
        who += f" and {len(interaction.allowed_users) - 20} more"
    facts.append(f"For {who}" if who else "Anyone here may answer")
    if interaction.deadline is not None and interaction.status == "pending":
        facts.append(f"Deadline {date_ref(interaction.deadline)}")
    return [truncate(f, 1000) for f in facts]


def _some_people(users: Sequence[str], most: int = 20) -> str:
    """Mentions of up to `most` people, then how many more there are."""
    refs = [user_ref(u) for u in users[:most]]
    if len(users) > most:
        refs.append(f"{len(users) - most} more")
    return join_words(refs)


def _quorum(interaction: InteractionView) -> str:
    text = f"*{interaction.approvals} of {interaction.required}* approvals"
    if interaction.approvers:
        text += ": " + _some_people(interaction.approvers)
    return truncate(text, 1000)


def _gate_actions(interaction: InteractionView, allow_edit_params: bool) -> list[dict[str, Any]]:
    block_id = ids.gate_block_id(interaction.id)
    value = ids.interaction_value(interaction.id)
    if interaction.kind == "approval":
        elements = [
            button("Approve", ids.APPROVE, value, style="primary"),
            button("Reject", ids.REJECT, value, style="danger", confirm=_confirm(interaction)),
            button("Reject with reason", ids.REJECT_WITH_REASON, value),
        ]
        if allow_edit_params:
            elements.append(button("Approve with changes", ids.APPROVE_WITH_CHANGES, value))
        return [{"type": "actions", "block_id": block_id, "elements": elements}]
    if interaction.kind == "decision":
        return _decision_actions(interaction, block_id)
    form = button("Fill in the form", ids.OPEN_INPUT, value, style="primary")
    return [{"type": "actions", "block_id": block_id, "elements": [form]}]


def _decision_actions(interaction: InteractionView, block_id: str) -> list[dict[str, Any]]:
    options = list(interaction.options)
    if not options:  # Slack refuses an actions block without elements
        return [context("There are no options to choose from.")]
    if len(options) <= MAX_BUTTONS:
        elements = [
            button(o.label, ids.decide_action_id(n), ids.decide_value(interaction.id, n, o.value))
            for n, o in enumerate(options)
        ]  # fmt: skip
        return [{"type": "actions", "block_id": block_id, "elements": elements}]
    if len(options) > MAX_SELECT_OPTIONS:  # more than a static menu holds: search them
        menu = suggestions.search_menu(interaction)
        return [{"type": "actions", "block_id": block_id, "elements": [menu]}]
    shown = options[:MAX_SELECT_OPTIONS]
    # Menus with many long labels would pass the message's cumulative text limit.
    label_limit = max(min(MAX_OPTION_TEXT, 4500 // len(shown)), 10)
    menu = {
        "type": "static_select",
        "action_id": ids.DECIDE_SELECT,
        "placeholder": plain("Choose…"),
        "options": [
            {"text": plain(o.label, label_limit), "value": ids.decide_option_value(n, o.value)}
            for n, o in enumerate(shown)
        ],
    }  # fmt: skip
    return [{"type": "actions", "block_id": block_id, "elements": [menu]}]


def _confirm(interaction: InteractionView) -> dict[str, Any]:
    text = f"Step {interaction.step_id} fails; the run stops unless the workflow goes on anyway."
    return {
        "title": plain("Reject this?"),
        "text": plain(text, MAX_CONFIRM_TEXT),
        "confirm": plain("Reject"),
        "deny": plain("Cancel"),
        "style": "danger",
    }


def _gate_fallback(interaction: InteractionView, closed: bool) -> str:
    if closed:
        return truncate(one_line(_outcome(interaction)[0]), MAX_FALLBACK_TEXT)
    title = (
        "Recovery needed"
        if interaction.purpose == "recovery"
        else _TITLES.get(interaction.kind, "Answer needed")
    )
    return escaped(f"{title}: {one_line(interaction.prompt)}", 300)


# -- what happened to a gate ---------------------------------------------------


def _outcome(interaction: InteractionView) -> list[str]:
    """Who answered what and when; the first line is the headline."""
    last = interaction.last_response
    at = f" · {date_ref(last.at)}" if last and last.at else ""
    deadline = last is not None and last.at_deadline
    who = interaction.answered_by or (last.user if last else None)
    by = "opsloop at deadline" if deadline else user_ref(who)
    status = interaction.status
    if status == "approved":
        who = by if deadline else _some_people(interaction.approvers)
        head = f":white_check_mark: Approved by {who or by}{at}"
    elif status == "rejected":
        head = f":x: Rejected by {by}{at}"
    elif status == "decided":
        label = escaped(_option_label(interaction, interaction.answer), 200)
        head = f":ballot_box_with_check: {by} chose *{label}*{at}"
        if deadline:
            head = f":ballot_box_with_check: *{label}* chosen by opsloop at deadline{at}"
    elif status == "submitted":
        head = f":memo: Submitted by {by}{at}"
    elif status == "expired":
        head = f":hourglass: Nobody answered before the deadline{at}"
    elif status == "cancelled":
        head = f":no_entry_sign: Cancelled by {user_ref(interaction.answered_by)}{at}"
    else:
        head = f"{UNKNOWN_ICON} {escape(status)} by {by}{at}"
    lines = [truncate(head, 1000)]
    if last and last.comment:
        lines.append(_quote(str(last.comment)))
    if last and last.changes:
        changed = [
            f"`{escaped(k, 64)}` {escaped(format_value(was), 200)} → "
            f"{escaped(format_value(now), 200)}"
            for k, (was, now) in last.changes.items()
        ]
        lines += pack_lines([f"Params changed: {', '.join(changed)}"], max_chunks=1, limit=1500)
    if status == "submitted" and isinstance(interaction.answer, Mapping):
        lines += _answer_lines(interaction.answer)
    return lines


def _option_label(interaction: InteractionView, value: Any) -> str:
    label = interaction.option_label(value)
    return format_value(value) if label is None else label


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in escaped(text, 1400).splitlines() or [""])


def _answer_lines(answer: Mapping[str, Any]) -> list[str]:
    lines = [
        f"`{escaped(k, 64)}`: {escaped(format_value(v), 300)}"
        for k, v in answer.items()
        if k != "submitted_by"
    ]
    return pack_lines(lines, max_chunks=1, limit=1500) if lines else []


# -- reminders ------------------------------------------------------------------


def render_reminder(
    run: RunView, interaction: InteractionView, *, escalate_to: Sequence[str] = ()
) -> dict[str, Any]:
    """A reminder in the run's thread for a gate still open; with `escalate_to` (user or
    group ids) it becomes an escalation that mentions them."""
    what = (
        f"the {escape(interaction.kind)} for step `{escaped(interaction.step_id, 80)}` of "
        f"`{escaped(run.workflow, 100)}` (run `{escaped(run.id, 80)}`)"
    )
    if escalate_to:
        mentions = join_words([_mention(x) for x in escalate_to[:20]])
        asked = _still_asked(interaction)
        text = f":rotating_light: {mentions}: nobody has answered {what} yet."
        text += f" It was for {asked}." if asked else ""
    else:
        asked = _still_asked(interaction)
        text = f":bell: Reminder{': ' + asked if asked else ''}: {what} is still waiting."
    if interaction.kind == "approval" and interaction.required > 1:
        text += f" {_quorum(interaction)}."
    if interaction.deadline is not None:
        text += f" Deadline {date_ref(interaction.deadline)}."
    blocks = [section(truncate(text, MAX_SECTION_TEXT)),
              context("> " + escaped(one_line(interaction.prompt), 500))]  # fmt: skip
    fallback = ("Escalation: " if escalate_to else "Reminder: ") + one_line(interaction.prompt)
    return {"text": escaped(fallback, 300), "blocks": blocks}


def _still_asked(interaction: InteractionView) -> str:
    """Who is still expected to answer: the listed people minus those who approved."""
    done = set(interaction.approvers)
    users = [u for u in interaction.allowed_users if u not in done]
    return truncate(people_refs(users[:20], interaction.allowed_groups[:10]), 1000)


def _mention(who: str) -> str:
    return group_ref(who) if who.startswith("S") else user_ref(who)
