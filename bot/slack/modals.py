"""Modals: an input gate's form, a reason to reject, missing run params for `/ops run`,
and params to change when approving.

Builders return the `view` argument of views.open. Every input block has block_id
`field.<name>`, `param.<name>` or `reason`, and its element action_id `value`; what
comes back when a modal is submitted is read in bot/slack/submissions.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.slack import ids
from bot.slack.text import (
    MAX_HINT,
    MAX_INPUT_VALUE,
    MAX_LABEL,
    MAX_MODAL_BLOCKS,
    MAX_MODAL_TEXT,
    MAX_OPTION_TEXT,
    MAX_OPTION_VALUE,
    MAX_SELECT_OPTIONS,
    context,
    escaped,
    format_value,
    one_line,
    pack_lines,
    plain,
    section,
    truncate,
)
from orchestrator.errors import ParamError
from orchestrator.protocol import InteractionView, RunView
from orchestrator.workflow.definitions import ParamSpec, Workflow
from orchestrator.workflow.gate_definitions import InputField
from orchestrator.workflow.params import coerce_value

FIELD_BLOCK_PREFIX = "field."
PARAM_BLOCK_PREFIX = "param."
REASON_BLOCK = "reason"
VALUE_ACTION = "value"  # the action_id of every input element
_MAX_INPUTS = MAX_MODAL_BLOCKS - 4  # room for the intro, errors and notes
_PROMPT_LIMIT = 2000


def field_block_id(name: str) -> str:
    return truncate(FIELD_BLOCK_PREFIX + name, 255, "")


def param_block_id(name: str) -> str:
    return truncate(PARAM_BLOCK_PREFIX + name, 255, "")


# -- builders ------------------------------------------------------------------


def input_modal(
    interaction: InteractionView, *, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The form of an input gate, one typed input per field."""
    fields = list(interaction.fields)
    blocks = [section(escaped(interaction.prompt, _PROMPT_LIMIT) or "_no message_")]
    blocks += [_field_input(f) for f in fields[:_MAX_INPUTS]]
    if len(fields) > _MAX_INPUTS:
        blocks.append(_note(f"{len(fields) - _MAX_INPUTS} more fields do not fit in a modal."))
    meta = {"interaction": interaction.id, "run": interaction.run_id, **(context or {})}
    return _modal(ids.INPUT_VIEW, "Input needed", "Submit", blocks, meta)


def reject_reason_modal(
    interaction: InteractionView, *, context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Asks why before rejecting; the reason goes to the audit log and the thread."""
    blocks = [
        section(escaped(interaction.prompt, _PROMPT_LIMIT) or "_no message_"),
        _input(REASON_BLOCK, "Why reject it?", _text_element(multiline=True), optional=False),
    ]
    meta = {"interaction": interaction.id, "run": interaction.run_id, **(context or {})}
    return _modal(ids.REJECT_REASON_VIEW, "Reject", "Reject", blocks, meta)


def params_modal(
    workflow: Workflow,
    given_params: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
    *,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The params of `/ops run WORKFLOW`, given values and defaults filled in.

    `errors` (param name -> message, see `param_errors`) are listed at the top.
    """
    intro = f"*{escaped(workflow.name, 100)}*: {escaped(one_line(workflow.description), 1000)}"
    blocks = [section(intro)]
    if errors:
        blocks.append(section(_errors_text(errors)))
    inputs, hidden = _param_inputs(workflow, given_params)
    blocks += inputs
    if hidden:
        blocks.append(_note(f"{len(hidden)} more parameters keep their given or default values."))
    meta = {"workflow": workflow.name, "hidden": hidden, **(context or {})}
    return _modal(ids.PARAMS_VIEW, f"Run {workflow.name}", "Run", blocks, meta)


def edit_params_modal(
    workflow: Workflow,
    run: RunView,
    interaction: InteractionView,
    *,
    errors: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Approve with changes: the run's params to edit, and why."""
    blocks = [section(escaped(interaction.prompt, _PROMPT_LIMIT) or "_no message_")]
    if errors:
        blocks.append(section(_errors_text(errors)))
    inputs, hidden = _param_inputs(workflow, run.params)
    blocks += inputs
    reason = _text_element(multiline=True)
    blocks.append(_input(REASON_BLOCK, "Why the change?", reason, optional=True))
    meta = {"interaction": interaction.id, "run": run.id, "workflow": workflow.name,
            "hidden": hidden, **(context or {})}  # fmt: skip
    return _modal(ids.EDIT_PARAMS_VIEW, "Approve with changes", "Approve", blocks, meta)


def _modal(
    callback_id: str, title: str, submit: str, blocks: list[dict[str, Any]], meta: Mapping
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(one_line(title), MAX_MODAL_TEXT),
        "submit": plain(submit, MAX_MODAL_TEXT),
        "close": plain("Cancel", MAX_MODAL_TEXT),
        "private_metadata": ids.encode_metadata(meta),
        "blocks": blocks[:MAX_MODAL_BLOCKS],
    }


def _param_inputs(
    workflow: Workflow, given: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Inputs for as many params as fit (missing required ones first) and the hidden rest."""
    specs = list(workflow.params)
    missing = [s for s in specs if s.required and is_blank(given.get(s.name))]
    ranked = missing + [s for s in specs if s not in missing]
    shown = {s.name for s in ranked[:_MAX_INPUTS]}
    inputs = [_param_input(s, given.get(s.name)) for s in specs if s.name in shown]
    hidden = {s.name: given[s.name] for s in specs if s.name not in shown and s.name in given}
    return inputs, hidden


def _param_input(spec: ParamSpec, given: Any) -> dict[str, Any]:
    value = spec.default if is_blank(given) else given
    try:
        typed = None if value is None else coerce_value(spec, value)
    except ParamError:
        typed = None  # shown empty; the error says what was wrong
    if spec.type == "bool":
        element = _radio([("true", "Yes"), ("false", "No")], _bool_text(typed))
    elif spec.type == "int":
        element = {"type": "number_input", "is_decimal_allowed": False}
        if typed is not None:
            element["initial_value"] = str(typed)
    elif spec.type == "choice" and len(spec.choices) <= MAX_SELECT_OPTIONS:
        element = _select(spec.choices, typed)
    else:
        raw = typed if typed is not None else (None if is_blank(given) else given)
        element = _text_element(initial=None if raw is None else format_value(raw))
    hint = spec.help
    if spec.pattern:
        hint = f"{hint} (matches {spec.pattern})".strip()
    if spec.type == "choice" and len(spec.choices) > MAX_SELECT_OPTIONS:
        hint = f"{hint} One of: {', '.join(spec.choices)}".strip()
    return _input(param_block_id(spec.name), spec.name, element, not spec.required, hint)


def _field_input(field: InputField) -> dict[str, Any]:
    kind, choices = field.type, field.choices
    hint = ""
    if kind == "number":
        element: dict[str, Any] = {"type": "number_input", "is_decimal_allowed": True}
    elif kind == "choice" and len(choices) <= MAX_SELECT_OPTIONS:
        element = _select(choices, None)
    else:
        element = _text_element(multiline=kind == "multiline")
        if kind == "choice":
            hint = "One of: " + ", ".join(choices)
    return _input(field_block_id(field.name), field.label, element, not field.required, hint)


def _input(
    block_id: str, label: str, element: dict[str, Any], optional: bool, hint: str = ""
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(one_line(label), MAX_LABEL),
        "element": {**element, "action_id": VALUE_ACTION},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, MAX_HINT)
    return block


def _text_element(*, multiline: bool = False, initial: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline}
    if initial:
        element["initial_value"] = truncate(initial, MAX_INPUT_VALUE, "")
    return element


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": plain(label, MAX_OPTION_TEXT), "value": truncate(value, MAX_OPTION_VALUE, "")}


def _select(choices: Sequence[str], initial: Any) -> dict[str, Any]:
    options = [_option(c, c) for c in choices]
    element: dict[str, Any] = {"type": "static_select", "placeholder": plain("Choose…"),
                               "options": options}  # fmt: skip
    if initial in choices:
        element["initial_option"] = options[list(choices).index(initial)]
    return element


def _radio(choices: Sequence[tuple[str, str]], initial: str | None) -> dict[str, Any]:
    options = [_option(value, label) for value, label in choices]
    element: dict[str, Any] = {"type": "radio_buttons", "options": options}
    for option in options:
        if option["value"] == initial:
            element["initial_option"] = option
    return element


def _bool_text(value: Any) -> str | None:
    return None if value is None else ("true" if value else "false")


def _note(text: str) -> dict[str, Any]:
    return context(escaped(text, 500))


def _errors_text(errors: Mapping[str, str]) -> str:
    lines = [f"• `{escaped(k, 64)}`: {escaped(one_line(v), 300)}" for k, v in errors.items()]
    return ":warning: *Please fix:*\n" + pack_lines(lines, max_chunks=1, limit=2500)[0]


def is_blank(value: Any) -> bool:
    """Nothing there: None, or text that is only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def param_errors(exc: ParamError) -> dict[str, str]:
    """param name -> message, for `params_modal(errors=...)` after `/ops run` was refused."""
    errors: dict[str, str] = {}
    for p in exc.problems:
        errors.setdefault(p.name, f"{p.message} (hint: {p.hint})")
    return errors
