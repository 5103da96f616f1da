"""Converters from one YAML node to a typed value, and the checks params and fields share.

Internal to `orchestrator.workflow.loader`. A converter is called as `convert(ctx, node,
key)`; it returns the value, or records a problem on `ctx` and returns None.
`parse_duration` is public and re-exported by `orchestrator.workflow.loader`.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Callable
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from orchestrator.errors import ExpressionError
from orchestrator.workflow.yaml_nodes import NULL, Context, Convert, plain_value, read_field

MAX_DURATION_S = 365 * 86400.0

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """Seconds from 30, 2.5, "30s", "5m", "2h", "1d", "1h30m" or "250ms"; ValueError otherwise."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif text and re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif text and re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    else:
        raise ValueError(f"{value!r} is not a duration")
    if not ((allow_zero and seconds == 0) or 0 < seconds <= MAX_DURATION_S):
        raise ValueError(f"{value!r} is out of range")
    return seconds


# ---------------------------------------------------------------- converters


def text_value(ctx: Context, node: Node, key: str) -> str | None:
    if isinstance(node, ScalarNode) and node.tag != NULL:
        return node.value
    ctx.add(node, f"{key} must be text", f"write {key}: followed by a value on the same line")
    return None


def flag_value(ctx: Context, node: Node, key: str) -> bool | None:
    if isinstance(value := plain_value(node), bool):
        return value
    ctx.add(node, f"{key} must be true or false", f"write {key}: true or {key}: false")
    return None


def count_value(low: int, high: int) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> int | None:
        if type(value := plain_value(node)) is int and low <= value <= high:
            return value
        ctx.add(node, f"{key} must be a whole number from {low} to {high}", f"e.g. {key}: {low}")
        return None

    return convert


def seconds_value(allow_zero: bool = False) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> float | None:
        try:
            return parse_duration(plain_value(node), allow_zero=allow_zero)
        except ValueError:
            hint = "write seconds (30) or a duration like 30s, 5m, 2h, 1h30m"
            ctx.add(node, f"{key} must be a duration of at most 365d", hint)
            return None

    return convert


def word_value(allowed: tuple[str, ...]) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> str | None:
        value = text_value(ctx, node, key)
        if value is None or value in allowed:
            return value
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.4)
        maybe = f"did you mean {close[0]}? " if close else ""
        ctx.add(node, f"{key} `{value}` is not allowed", f"{maybe}use one of: {', '.join(allowed)}")
        return None

    return convert


def matching_value(pattern: re.Pattern[str], problem: str, hint: str) -> Convert:
    """Text that `pattern` matches in full; otherwise `problem`, with `{value}` filled in."""

    def convert(ctx: Context, node: Node, key: str) -> str | None:
        value = text_value(ctx, node, key)
        if value is not None and not pattern.fullmatch(value):
            ctx.add(node, problem.format(value=value), hint)
            return None
        return value

    return convert


def text_list(ctx: Context, node: Node, key: str, scalar_ok: bool = True) -> tuple[str, ...] | None:
    """A list of text items; a single item on its own is accepted when `scalar_ok`."""
    if scalar_ok and isinstance(node, ScalarNode) and node.tag != NULL:
        return (node.value,)
    items = node.value if isinstance(node, SequenceNode) else [node]
    if all(isinstance(i, ScalarNode) and i.tag != NULL for i in items):
        return tuple(item.value for item in items)
    ctx.add(node, f"{key} must be a list of text items", f"write {key}: [a, b]")
    return None


def choice_list(ctx: Context, node: Node, key: str) -> tuple[str, ...] | None:
    values = text_list(ctx, node, key, scalar_ok=False)
    if values is not None and (not values or len(set(values)) != len(values)):
        ctx.add(node, f"{key} must be a non-empty list without repeats", f"write {key}: [a, b]")
        return None
    return values


def slack_id_list(pattern: re.Pattern[str], example: str) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> tuple[str, ...] | None:
        ids = text_list(ctx, node, key)
        bad = [i for i in ids or () if not pattern.fullmatch(i)]
        if bad:
            hint = f"use Slack ids like {example} (profile > Copy member ID), not names"
            ctx.add(node, f"{', '.join(bad)} in {key} is not a Slack id", hint)
            return None
        return ids

    return convert


def compiled_value(compile_: Callable[[str], Any]) -> Convert:
    """Text that must compile as a condition or template; its references are kept for later."""

    def convert(ctx: Context, node: Node, key: str) -> str | None:
        text = text_value(ctx, node, key)
        try:
            if text is not None:
                ctx.exprs.append((node, compile_(text).references(), key))
        except ExpressionError as exc:
            ctx.add(node, f"{key}: {exc.message}", exc.hint)
            return None
        return text

    return convert


def nested_value(schema: dict[str, tuple[str, Convert]], build: Callable[..., Any]) -> Convert:
    def convert(ctx: Context, node: Node, key: str) -> Any:
        before = len(ctx.items)
        values, _ = read_field(ctx, node, schema, key)
        return build(**values) if len(ctx.items) == before else None

    return convert


def pattern_value(ctx: Context, node: Node, key: str) -> str | None:
    pattern = text_value(ctx, node, key)
    try:
        return re.compile(pattern).pattern if pattern is not None else None
    except re.error as exc:
        ctx.add(node, f"pattern is not a valid regular expression: {exc}", "fix the pattern")
        return None


def node_value(ctx: Context, node: Node, key: str) -> Node:
    """Keep the node itself; it is checked once the rest of the mapping is known."""
    return node


# ---------------------------------------------------------------- shared by params and fields


def identifier_value(ctx: Context, node: Node, name: str, noun: str, read_as: str) -> None:
    if not _IDENT.fullmatch(name) or keyword.iskeyword(name):
        hint = f"use letters, digits and _; it is read as {read_as}"
        ctx.add(node, f"invalid {noun} name `{name}`", hint)


def check_choices(ctx: Context, node: Node, nodes: dict[str, Node], kind: str, what: str) -> None:
    if "choices" in nodes and kind != "choice":
        ctx.add(nodes["choices"], f"choices need type: choice, not {kind}", "add type: choice")
    if kind == "choice" and "choices" not in nodes:
        ctx.add(node, f"{what} has type choice but no choices", "add choices: [a, b]")
