"""Steps of a workflow: their actions (python, shell, gates), gate options and input fields.

Internal to `orchestrator.workflow.loader`. `read_steps` reads the `steps:` list into
`StepDraft`s, which keep what the whole-workflow checks need (id, needs,
expressions) even for a step too broken to build.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.workflow.access_schema import read_env
from orchestrator.workflow.definitions import (
    RETRY_ON,
    STEP_KINDS,
    PythonAction,
    ReportAction,
    RetryPolicy,
    ShellAction,
    Step,
)
from orchestrator.workflow.expressions import compile_condition, compile_template
from orchestrator.workflow.gate_definitions import (
    NOTIFY_MODES,
    ApprovalGate,
    Approvers,
    DecisionGate,
    Escalation,
    InputField,
    InputGate,
    Option,
)
from orchestrator.workflow.yaml_converters import (
    check_choices,
    choice_list,
    compiled_value,
    count_value,
    flag_value,
    identifier_value,
    nested_value,
    seconds_value,
    slack_id_list,
    text_list,
    text_value,
    word_value,
)
from orchestrator.workflow.yaml_nodes import (
    MISSING,
    NULL,
    Context,
    Convert,
    line_of,
    mapping_pairs,
    read_field,
)

FIELD_TYPES = ("text", "number", "choice", "multiline")

_STEP_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TARGET = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")


@dataclass
class StepDraft:
    """What the graph and reference checks need from a step, even a broken one."""

    id: str
    node: Node
    needs: tuple[str, ...]
    needs_node: Node | None
    exprs: list[tuple[Node, set[tuple[str, str]], str]]
    step: Step | None = None


# ---------------------------------------------------------------- steps


def read_steps(ctx: Context, node: Node, key: str) -> list[StepDraft]:
    if not isinstance(node, SequenceNode) or not node.value:
        ctx.add(node, "steps must be a non-empty list", "start each step with '- id: ...'")
        return []
    drafts: dict[str, StepDraft] = {}
    for item in node.value:
        draft = _step(ctx, item)
        if draft is not None and draft.id in drafts:
            hint = f"step ids must be unique; line {line_of(drafts[draft.id].node)} uses it already"
            ctx.add(draft.node, f"duplicate step id `{draft.id}`", hint)
        elif draft is not None:
            drafts[draft.id] = draft
    return list(drafts.values())


def _step(ctx: Context, node: Node) -> StepDraft | None:
    ctx.exprs = []
    before = len(ctx.items)
    values, nodes = read_field(ctx, node, STEP_SCHEMA, "a step", required=("id",))
    step_id = values.pop("id", None)
    needs = tuple(dict.fromkeys(values.pop("needs", None) or ()))
    _check_kinds(ctx, node, nodes, step_id)
    if step_id is None:
        return None
    draft = StepDraft(step_id, node, needs, nodes.get("needs"), ctx.exprs)
    if len(ctx.items) == before:
        draft.step = Step(id=step_id, needs=needs, line=line_of(node), **values)
    return draft


def _step_id(ctx: Context, node: Node, key: str) -> str | None:
    step_id = text_value(ctx, node, key)
    if step_id is not None and (not _STEP_ID.fullmatch(step_id) or keyword.iskeyword(step_id)):
        hint = "use lowercase letters, digits and _, starting with a letter (read as steps.<id>)"
        ctx.add(node, f"invalid step id `{step_id}`", hint)
        return None
    return step_id


def _check_kinds(ctx: Context, node: Node, nodes: dict[str, Node], step_id: str | None) -> None:
    """Exactly one action, and keys that fit that kind of step."""
    what = f"step `{step_id}`" if step_id else "a step"
    kinds = [kind for kind in STEP_KINDS if kind in nodes]
    if not kinds:
        ctx.add(node, f"{what} has nothing to do", f"give it one of: {', '.join(STEP_KINDS)}")
    elif len(kinds) > 1:
        hint = "give each action its own step and connect them with needs"
        ctx.add(nodes[kinds[1]], f"{what} has more than one action: {', '.join(kinds)}", hint)
    kind = kinds[0] if len(kinds) == 1 else None
    for key in ("retry", "timeout"):
        if (kind in _GATES or kind == "report") and key in nodes:
            hint = ("a gate waits for people; give it a deadline instead" if kind in _GATES
                    else "a report is one database read; remove it")  # fmt: skip
            ctx.add(nodes[key], f"{key} applies to python and shell steps, not {kind}", hint)
    if "auto_approve_if" in nodes and kind != "approval":
        hint = "a decision or form has no answer to assume; use if: to skip the step instead"
        ctx.add(nodes["auto_approve_if"], "auto_approve_if only applies to approval gates", hint)


def _python(ctx: Context, node: Node, key: str) -> PythonAction | None:
    target = text_value(ctx, node, key)
    if target is not None and not _TARGET.fullmatch(target):
        hint = "write package.module:function, like opsloop_examples.tasks:build"
        ctx.add(node, f"python target `{target}` is not module:function", hint)
        return None
    return PythonAction(target) if target is not None else None


def _shell(ctx: Context, node: Node, key: str) -> ShellAction | None:
    hint = 'write shell: ["echo", "hello"]; it runs without a shell, one item per argument'
    if isinstance(node, ScalarNode) or (isinstance(node, SequenceNode) and not node.value):
        ctx.add(node, "shell must be a non-empty argv list, not a command string", hint)
        return None
    argv = text_list(ctx, node, key, scalar_ok=False)
    if argv is None:
        return None
    for item in node.value:
        _TEMPLATE(ctx, item, "shell argument")
    return ShellAction(argv)


def _retry_on(ctx: Context, node: Node, key: str) -> frozenset[str] | None:
    values = frozenset(text_list(ctx, node, key) or ())
    if values and values <= RETRY_ON:
        return values
    ctx.add(node, f"{key} must list what to retry on", "use on: [error], [timeout] or both")
    return None


# ---------------------------------------------------------------- gates


def _gate(kind: str, build: Callable[..., Any], required: tuple[str, ...]) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> Any:
        before = len(ctx.items)
        values, nodes = read_field(
            ctx, node, _GATES[kind], f"the {kind} gate", ("message", *required)
        )
        if "on_deadline" in nodes and "deadline" not in nodes:
            hint = "add deadline: 2h, or remove on_deadline"
            ctx.add(nodes["on_deadline"], "on_deadline does nothing without a deadline", hint)
        _GATE_CHECKS[kind](ctx, values, nodes)
        return build(**values) if len(ctx.items) == before else None

    return convert


def _check_approval(ctx: Context, values: dict[str, Any], nodes: dict[str, Node]) -> None:
    required, approvers = values.get("required") or 1, values.get("approvers") or Approvers()
    if approvers.users and not approvers.groups and required > len(approvers.users):
        message = f"required is {required} but only {len(approvers.users)} approvers are listed"
        ctx.add(nodes["required"], message, "lower required or list more approvers")


def _check_decision(ctx: Context, values: dict[str, Any], nodes: dict[str, Node]) -> None:
    choices = [option.value for option in values.get("options") or ()]
    default = values.get("default")
    if default is not None and choices and default not in choices:
        hint = f"use one of: {', '.join(choices)}"
        ctx.add(nodes["default"], f"default `{default}` is not one of the options", hint)
    if values.get("on_deadline") == "default" and "default" not in nodes:
        hint = "add default: <option>, or use on_deadline: fail"
        ctx.add(nodes["on_deadline"], "on_deadline: default needs a default option", hint)
    values.setdefault("on_deadline", "default" if "default" in nodes else "fail")


def _options(ctx: Context, node: Node, key: str) -> tuple[Option, ...] | None:
    if not isinstance(node, SequenceNode) or not node.value:
        ctx.add(node, "options must be a non-empty list", "write options: [canary, all_at_once]")
        return None
    options = [_option(ctx, item) for item in node.value]
    if len({o.value for o in options if o}) != len(options):
        ctx.add(node, "options must be unique values", "give every option its own value")
    return tuple(o for o in options if o)


def _option(ctx: Context, node: Node) -> Option | None:
    if not isinstance(node, MappingNode):
        value = text_value(ctx, node, "option")
        return Option(value, value) if value is not None else None
    values, _ = read_field(ctx, node, _OPTION, "an option", required=("value",))
    if values.get("value") is None:
        return None
    return Option(values["value"], values.get("label") or values["value"])


def _fields(ctx: Context, node: Node, key: str) -> tuple[InputField, ...] | None:
    pairs = mapping_pairs(ctx, node, key, "write fields: {ticket: {type: text}}")
    if pairs == []:
        ctx.add(node, "an input gate needs at least one field", MISSING["fields"])
    fields = [_field(ctx, key_node, name, value) for key_node, name, value in pairs or ()]
    return tuple(f for f in fields if f is not None)


def _field(ctx: Context, key_node: Node, name: str, node: Node) -> InputField | None:
    identifier_value(ctx, key_node, name, "field", "steps.<id>.outputs.<name>")
    if isinstance(node, ScalarNode) and node.tag == NULL:
        return InputField(name=name, label=name)
    values, nodes = read_field(ctx, node, _FIELD, f"field `{name}`")
    check_choices(ctx, node, nodes, values.get("type") or "text", f"field `{name}`")
    return InputField(name=name, **{"label": name, **values})


# ---------------------------------------------------------------- schemas

_CONDITION = compiled_value(compile_condition)
_TEMPLATE = compiled_value(compile_template)
_APPROVERS = nested_value(
    {"users": ("users", slack_id_list(_USER, "U012AB3CD")),
     "groups": ("groups", slack_id_list(_GROUP, "S012AB3CD"))},
    Approvers,
)  # fmt: skip
_ESCALATE = {
    "after": ("after_s", seconds_value()),
    "users": ("users", slack_id_list(_USER, "U012AB3CD")),
    "groups": ("groups", slack_id_list(_GROUP, "S012AB3CD")),
}
_GATE = {
    "message": ("message", _TEMPLATE),
    "allow_requester": ("allow_requester", flag_value),
    "deadline": ("deadline_s", seconds_value()),
    "remind_every": ("remind_every_s", seconds_value()),
    "notify": ("notify", word_value(NOTIFY_MODES)),
    "escalate": ("escalate", nested_value(_ESCALATE, Escalation)),
}
_GATES: dict[str, dict[str, tuple[str, Convert]]] = {
    "approval": {**_GATE, "approvers": ("approvers", _APPROVERS),
                 "required": ("required", count_value(1, 50)),
                 "editable_params": ("editable_params", text_list),
                 "on_deadline": ("on_deadline", word_value(("reject", "approve", "fail")))},
    "decision": {**_GATE, "deciders": ("approvers", _APPROVERS),
                 "options": ("options", _options), "default": ("default", text_value),
                 "on_deadline": ("on_deadline", word_value(("default", "fail")))},
    "input": {**_GATE, "responders": ("approvers", _APPROVERS), "fields": ("fields", _fields),
              "on_deadline": ("on_deadline", word_value(("fail",)))},
}  # fmt: skip
_GATE_CHECKS: dict[str, Callable[[Context, dict[str, Any], dict[str, Node]], None]] = {
    "approval": _check_approval,
    "decision": _check_decision,
    "input": lambda ctx, values, nodes: None,
}
_OPTION = {"value": ("value", text_value), "label": ("label", text_value)}
_FIELD = {
    "type": ("type", word_value(FIELD_TYPES)),
    "required": ("required", flag_value),
    "choices": ("choices", choice_list),
    "label": ("label", text_value),
}
_CHANNEL = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def _report_channels(ctx: Context, node: Node, key: str) -> tuple[str, ...] | None:
    """`all` (every run), or the channels whose runs a report counts besides its own."""
    if isinstance(node, ScalarNode) and node.value == "all":
        return ("*",)
    values = text_list(ctx, node, key)
    bad = [v for v in values or () if not _CHANNEL.fullmatch(v)]
    if bad:
        hint = f"write {key}: [C012ABC] (the runs' channel ids) or {key}: all"
        ctx.add(node, f"`{bad[0]}` in {key} is not a channel id", hint)
        return None
    return values


_REPORT = {
    "since": ("since_s", seconds_value()),
    "workflows": ("workflows", text_list),
    "chart": ("chart", flag_value),
    "channels": ("channels", _report_channels),
}
_RETRY = {
    "attempts": ("attempts", count_value(1, 100)),
    "backoff": ("backoff_s", seconds_value(allow_zero=True)),
    "on": ("on", _retry_on),
}
STEP_SCHEMA: dict[str, tuple[str, Convert]] = {
    "id": ("id", _step_id),
    "needs": ("needs", text_list),
    "if": ("condition", _CONDITION),
    "retry": ("retry", nested_value(_RETRY, RetryPolicy)),
    "timeout": ("timeout_s", seconds_value()),
    "continue_on_error": ("continue_on_error", flag_value),
    "idempotent": ("idempotent", flag_value),
    "auto_approve_if": ("auto_approve_if", _CONDITION),
    "env": ("env", read_env),
    "python": ("action", _python),
    "shell": ("action", _shell),
    "approval": ("action", _gate("approval", ApprovalGate, ())),
    "decision": ("action", _gate("decision", DecisionGate, ("options",))),
    "input": ("action", _gate("input", InputGate, ("fields",))),
    "report": ("action", nested_value(_REPORT, ReportAction)),
}
