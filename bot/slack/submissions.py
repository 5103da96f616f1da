"""What comes back when a modal is submitted (the modals are built in bot/slack/modals.py).

Parsers read a view_submission's `view.state.values`; validators return the inline
errors Slack shows, keyed by block_id (`errors_response` wraps them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.slack import ids
from bot.slack.modals import (
    REASON_BLOCK,
    VALUE_ACTION,
    field_block_id,
    is_blank,
    param_block_id,
)
from bot.slack.text import truncate
from orchestrator.errors import ParamError
from orchestrator.protocol import InteractionView
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.numbers import NumberError, parse_number
from orchestrator.workflow.params import coerce_params


def read_state(state_values: Mapping[str, Any]) -> dict[str, Any]:
    """block_id -> the value of its `value` element: text, a selected option's value
    (static_select, radio_buttons), a list (checkboxes), or None when empty."""
    values: dict[str, Any] = {}
    for block_id, actions in state_values.items():
        element = (actions or {}).get(VALUE_ACTION) or {}
        values[block_id] = _element_value(element)
    return values


def _element_value(element: Mapping[str, Any]) -> Any:
    if "selected_options" in element:
        return [o.get("value") for o in element.get("selected_options") or ()]
    if "selected_option" in element:
        option = element.get("selected_option")
        return option.get("value") if option else None
    value = element.get("value")
    return None if is_blank(value) else value


def parse_input_submission(
    interaction: InteractionView, state_values: Mapping[str, Any]
) -> dict[str, Any]:
    """field name -> value (numbers as int or float; None when left empty)."""
    state = read_state(state_values)
    values: dict[str, Any] = {}
    for field in interaction.fields:
        raw = state.get(field_block_id(field.name))
        values[field.name] = _number(raw) if field.type == "number" else raw
    return values


def validate_input_submission(
    interaction: InteractionView, values: Mapping[str, Any]
) -> dict[str, str]:
    """Inline errors for a submitted input form: block_id -> message; empty when fine."""
    errors: dict[str, str] = {}
    for field in interaction.fields:
        value = values.get(field.name)
        problem = None
        if is_blank(value):
            problem = "This field is required." if field.required else None
        elif field.type == "number" and not isinstance(value, int | float):
            problem = _number_problem(value)
        elif field.type == "choice" and value not in field.choices:
            problem = "Choose one of: " + ", ".join(field.choices)
        if problem:
            errors[field_block_id(field.name)] = truncate(problem, 300)
    return errors


def parse_params_submission(
    workflow: Workflow, state_values: Mapping[str, Any], private_metadata: str | None = None
) -> dict[str, Any]:
    """param name -> value as typed (int, bool, text), with the params the modal could not
    show taken from its private_metadata; empty inputs are left out so defaults apply."""
    state = read_state(state_values)
    values: dict[str, Any] = dict(ids.decode_metadata(private_metadata).get("hidden") or {})
    for spec in workflow.params:
        raw = state.get(param_block_id(spec.name))
        if raw is None:
            continue
        if spec.type == "bool":
            values[spec.name] = raw == "true"
        elif spec.type == "int":
            number = _number(raw)
            values[spec.name] = number if isinstance(number, int) else raw
        else:
            values[spec.name] = raw
    return values


def validate_params_submission(workflow: Workflow, values: Mapping[str, Any]) -> dict[str, str]:
    """Inline errors for submitted params: block_id -> message; empty when they are fine."""
    try:
        coerce_params(workflow, values)
    except ParamError as exc:
        known = {s.name for s in workflow.params}
        first = param_block_id(workflow.params[0].name) if workflow.params else REASON_BLOCK
        errors: dict[str, str] = {}
        for p in exc.problems:
            block_id = param_block_id(p.name) if p.name in known else first
            text = f"{p.message}; {p.hint}" if p.name in known else f"{p.name} {p.message}"
            errors.setdefault(block_id, truncate(text, 300))
        return errors
    return {}


def parse_reason(state_values: Mapping[str, Any]) -> str | None:
    """The text of the `reason` block (reject reason, or why params changed)."""
    value = read_state(state_values).get(REASON_BLOCK)
    return value.strip() if isinstance(value, str) else None


def errors_response(errors: Mapping[str, str]) -> dict[str, Any]:
    """What to `ack()` with so Slack shows `errors` under their inputs."""
    return {"response_action": "errors", "errors": dict(errors)}


def _number(raw: Any) -> Any:
    """By the CLI's rule (orchestrator/workflow/numbers.py); left as typed when not a number,
    for `validate_input_submission` to say why."""
    try:
        return parse_number(raw) if isinstance(raw, str) else raw
    except NumberError:
        return raw


def _number_problem(value: Any) -> str:
    try:
        parse_number(value)
    except NumberError as exc:
        return str(exc)
    return "Enter a number."
