"""The `schedules:` block of a workflow file: when the workflow starts itself.

Internal to `orchestrator.workflow.loader`. Each schedule is read through a schema
like a step (file:line and a hint for every problem): the cron expression with its
bad field named (`orchestrator.workflow.cron`), the time zone with a near match, and
the params exactly as a start would check them (`coerce_params`). Params are checked
by `finish_schedules`, once the whole file is read, since `params:` may come after.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import available_timezones

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import ParamError
from orchestrator.workflow.cron import CronError, parse_cron
from orchestrator.workflow.definitions import OVERLAPS, ParamSpec, ScheduleSpec, Workflow
from orchestrator.workflow.params import coerce_params
from orchestrator.workflow.yaml_converters import (
    count_value,
    matching_value,
    node_value,
    seconds_value,
    text_value,
    word_value,
)
from orchestrator.workflow.yaml_nodes import (
    NOT_SCALAR,
    NULL,
    Context,
    line_of,
    mapping_pairs,
    plain_value,
    read_field,
)

_KEY = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_CHANNEL = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_PARAMS = "write params: {service: api}"
_EXAMPLE = 'write schedules: [{cron: "0 3 * * 1-5", timezone: Europe/Berlin}]'


@dataclass
class ScheduleDraft:
    """A schedule read so far: its spec (id still without the workflow name) and nodes."""

    spec: ScheduleSpec | None
    node: Node
    params: Node | None


def read_schedules(ctx: Context, node: Node, key: str) -> list[ScheduleDraft]:
    """The drafts of every schedule under `schedules:` (a list of mappings)."""
    if isinstance(node, ScalarNode) and node.tag == NULL:
        return []
    if not isinstance(node, SequenceNode):
        ctx.add(node, "schedules must be a list of mappings", _EXAMPLE)
        return []
    drafts = [_schedule(ctx, item, n) for n, item in enumerate(node.value, start=1)]
    seen: dict[str, int] = {}
    for draft in drafts:
        if draft.spec is None:
            continue
        if draft.spec.id in seen:
            hint = f"schedule ids must differ; the other is on line {seen[draft.spec.id]}"
            ctx.add(draft.node, f"schedule id `{draft.spec.id}` is used twice", hint)
        seen.setdefault(draft.spec.id, line_of(draft.node))
    return drafts


def finish_schedules(
    ctx: Context, drafts: list[ScheduleDraft], name: str | None, params: tuple[ParamSpec, ...]
) -> tuple[ScheduleSpec, ...]:
    """The specs, with ids "<workflow>/<key>" and params a start of the workflow accepts."""
    workflow = Workflow(name=name or "this workflow", description="", params=params, steps=())
    specs = []
    for draft in drafts:
        values = _param_values(ctx, draft, workflow)
        if draft.spec is not None and values is not None:
            specs.append(replace(draft.spec, id=f"{name}/{draft.spec.id}", params=values))
    return tuple(specs)


def _schedule(ctx: Context, node: Node, position: int) -> ScheduleDraft:
    before = len(ctx.items)
    values, nodes = read_field(ctx, node, _SCHEDULE, f"schedule {position}")
    if "cron" not in nodes and isinstance(node, MappingNode):
        ctx.add(node, f"schedule {position} has no cron", 'add cron: "0 3 * * 1-5"')
    params = nodes.get("params")
    values.pop("params", None)
    if len(ctx.items) > before:
        return ScheduleDraft(None, node, params)
    values["id"] = values.pop("key", None) or str(position)
    return ScheduleDraft(ScheduleSpec(line=line_of(node), **values), node, params)


def _param_values(
    ctx: Context, draft: ScheduleDraft, workflow: Workflow
) -> tuple[tuple[str, Any], ...] | None:
    """The params as written, typed as the workflow declares them; None if a start would fail."""
    node = draft.params
    raw: dict[str, Any] = {}
    nodes: dict[str, Node] = {}
    pairs = [] if node is None or node.tag == NULL else mapping_pairs(ctx, node, "params", _PARAMS)
    for _, name, value in pairs or ():
        typed = plain_value(value)
        if typed is NOT_SCALAR:
            ctx.add(value, f"schedule param `{name}` must be one value", "write name: value")
            return None
        declared = next((p for p in workflow.params if p.name == name), None)
        textual = declared is not None and declared.type not in ("int", "bool")
        raw[name], nodes[name] = (value.value if textual else typed), value
    try:
        coerce_params(workflow, raw)
    except ParamError as exc:
        declared_with_errors = ctx.param_names - {p.name for p in workflow.params}
        for problem in exc.problems:
            if problem.name not in declared_with_errors:
                where = nodes.get(problem.name, node if node is not None else draft.node)
                hint = problem.hint
                if problem.message == "is required":
                    hint = f"add params: {{{problem.name}: ...}} to the schedule"
                ctx.add(where, f"schedule param `{problem.name}` {problem.message}", hint)
        return None
    return None if pairs is None else tuple(raw.items())


# ---------------------------------------------------------------- converters


def _cron_value(ctx: Context, node: Node, key: str) -> str | None:
    value = text_value(ctx, node, key)
    if value is None:
        return None
    try:
        return parse_cron(value).text
    except CronError as exc:
        ctx.add(node, exc.message, exc.hint)
        return None


def _timezone_value(ctx: Context, node: Node, key: str) -> str | None:
    value = text_value(ctx, node, key)
    if value is None or value in _zones():
        return value
    ctx.add(node, f"unknown timezone `{value}`", _zone_hint(value))
    return None


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone_hint(value: str) -> str:
    by_folded = {zone.casefold(): zone for zone in _zones()}
    if value.casefold() in by_folded:
        return f"did you mean {by_folded[value.casefold()]}?"
    close = difflib.get_close_matches(value, sorted(_zones()), n=1, cutoff=0.6)
    cities = {zone.rsplit("/", 1)[-1].casefold(): zone for zone in sorted(_zones())}
    city = difflib.get_close_matches(value.replace(" ", "_").casefold(), cities, n=1, cutoff=0.8)
    if close or city:
        return f"did you mean {close[0] if close else cities[city[0]]}?"
    return "use an IANA name such as UTC, Europe/Berlin or America/New_York"


_key_value = matching_value(
    _KEY,
    "invalid schedule id `{value}`",
    "start with a letter; use lowercase letters, digits, - and _ (at most 64)",
)
_channel_value = matching_value(
    _CHANNEL,
    "channel `{value}` is not a channel id or name",
    "use the channel's id (C012ABC, from its details) or its #name",
)
_SCHEDULE = {
    "id": ("key", _key_value),
    "cron": ("cron", _cron_value),
    "timezone": ("timezone", _timezone_value),
    "params": ("params", node_value),
    "channel": ("channel", _channel_value),
    "overlap": ("overlap", word_value(OVERLAPS)),
    "catchup": ("catchup_s", seconds_value(allow_zero=True)),
    "pause_after_failures": ("pause_after_failures", count_value(1, 1000)),
}
