"""YAML composed into nodes that keep their lines, and mappings read through a schema.

Internal to `orchestrator.workflow.loader`. `Context` collects the `DefinitionError`s of
one file so checking can go on after the first problem; `read_field` converts a
mapping key by key through a schema (key -> dataclass field, converter) and
reports unknown, repeated and missing keys with a hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

from orchestrator.errors import DefinitionError

NULL = "tag:yaml.org,2002:null"
NOT_SCALAR = object()
_ALIASES = {"depends_on": "needs", "depends": "needs", "requires": "needs", "when": "if",
            "condition": "if", "run": "shell", "command": "shell", "cmd": "shell",
            "inputs": "params", "parameters": "params", "jobs": "steps", "tasks": "steps",
            "approvers": "deciders/responders", "deciders": "approvers/responders",
            "responders": "approvers/deciders", "choices": "options",
            "retries": "retry"}  # fmt: skip
MISSING = {
    "name": "add name: my-workflow at the top of the file",
    "steps": "add steps: with at least one step",
    "id": "add id: <name> to the step",
    "message": "add message: the question people see in Slack",
    "options": "add options: [a, b]",
    "fields": "add fields: {ticket: {type: text}}",
    "value": "write the option as {value: canary, label: Canary first}",
}

Convert = Callable[["Context", Node, str], Any]


@dataclass
class Context:
    """Problems found in one file so far, and the expressions of the step being read."""

    path: str
    items: list[DefinitionError] = field(default_factory=list)
    exprs: list[tuple[Node, set[tuple[str, str]], str]] = field(default_factory=list)
    # Every param name written under params:, valid or not, so that a param with an
    # error of its own is not also reported as undeclared wherever it is read.
    param_names: set[str] = field(default_factory=set)

    def add(self, node: Node | None, message: str, hint: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.items.append(DefinitionError(self.path, line, message, hint))


def compose_nodes(ctx: Context, text: str) -> Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        reason = exc.problem or exc.context or "unreadable"
        mark = exc.problem_mark or exc.context_mark
        if "end of stream" in reason or "<stream end>" in reason:
            mark = exc.context_mark or mark  # where the unclosed thing started
        last_line = max(len(text.splitlines()), 1)
        line = min(mark.line + 1, last_line) if mark else 1
        ctx.items.append(
            DefinitionError(ctx.path, line, f"invalid YAML: {reason}", _yaml_hint(reason))
        )
        return None
    except (yaml.YAMLError, RecursionError) as exc:
        line = text[: getattr(exc, "position", 0)].count("\n") + 1
        hint = "remove control characters and deep nesting"
        ctx.items.append(DefinitionError(ctx.path, line, f"invalid YAML: {exc}", hint))
        return None
    if root is None:
        ctx.add(None, "the file is empty", "a workflow needs at least name: and steps:")
    return root


def _yaml_hint(reason: str) -> str:
    if "\\t" in reason or "tab" in reason:
        return "YAML does not allow tabs for indentation; use spaces"
    if "mapping values are not allowed" in reason:
        return "quote values that contain ': ' and check the indentation"
    return "check the indentation and quoting on this line and the one before"


# ---------------------------------------------------------------- reading mappings


def read_field(
    ctx: Context,
    node: Node,
    schema: dict[str, tuple[str, Convert]],
    what: str,
    required: Iterable[str] = (),
) -> tuple[dict[str, Any], dict[str, Node]]:
    """Convert a mapping through `schema`; returns (field values, value nodes by key)."""
    values: dict[str, Any] = {}
    nodes: dict[str, Node] = {}
    for key_node, key, value in (
        mapping_pairs(ctx, node, what, f"known keys: {', '.join(schema)}") or ()
    ):
        if key not in schema:
            ctx.add(key_node, f"unknown key `{key}` in {what}", suggest(key, schema))
            continue
        attr, convert = schema[key]
        nodes[key] = value
        values[attr] = convert(ctx, value, key)
    missing = [key for key in required if key not in nodes]
    for key in missing if isinstance(node, MappingNode) else ():
        ctx.add(node, f"{what} has no {key}", MISSING[key])
    return values, nodes


def mapping_pairs(
    ctx: Context, node: Node, what: str, hint: str
) -> list[tuple[Node, str, Node]] | None:
    """(key node, key, value node) of a mapping with plain-text keys, each key once."""
    if not isinstance(node, MappingNode):
        ctx.add(node, f"{what} must be a mapping (key: value lines)", hint)
        return None
    pairs: list[tuple[Node, str, Node]] = []
    for key_node, value in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
            merge = isinstance(key_node, ScalarNode)
            hint = "merge keys (<<) are not supported" if merge else "use plain words as keys"
            ctx.add(key_node, f"{what} has a key that is not plain text", hint)
        elif any(key_node.value == key for _, key, _ in pairs):
            ctx.add(key_node, f"key `{key_node.value}` appears twice in {what}", "keep one of them")
        else:
            pairs.append((key_node, key_node.value, value))
    return pairs


def suggest(word: str, known: Iterable[str], noun: str = "keys") -> str:
    known = list(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    close += [k for k in _ALIASES.get(word, "").split("/") if k in known]
    if close:
        return f"did you mean `{close[0]}`?"
    return f"known {noun}: {', '.join(known)}" if known else f"there are no {noun} to use here"


def plain_value(node: Node) -> Any:
    """A scalar's YAML value (int, float, bool, str...); `NOT_SCALAR` for lists and mappings."""
    if not isinstance(node, ScalarNode):
        return NOT_SCALAR
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return node.value


def line_of(node: Node) -> int:
    return node.start_mark.line + 1
