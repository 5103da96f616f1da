"""The workflow mapping and its params, and the checks that need every step at once.

Internal to `orchestrator.workflow.loader`. `read_workflow` reads the top-level mapping, then
checks the step graph (unknown needs, cycles), what each expression reads
(declared params, upstream steps) and editable params, before building the
`Workflow`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from yaml.nodes import Node, ScalarNode

from orchestrator.errors import ParamError
from orchestrator.workflow.access_schema import read_access, read_env
from orchestrator.workflow.definitions import ParamSpec, Workflow
from orchestrator.workflow.gate_definitions import ApprovalGate
from orchestrator.workflow.params import coerce_value
from orchestrator.workflow.schedules import finish_schedules, read_schedules
from orchestrator.workflow.step_graph import find_cycle, transitive_needs
from orchestrator.workflow.step_schema import StepDraft, read_steps
from orchestrator.workflow.yaml_converters import (
    check_choices,
    choice_list,
    count_value,
    flag_value,
    identifier_value,
    node_value,
    pattern_value,
    text_value,
    word_value,
)
from orchestrator.workflow.yaml_nodes import (
    NOT_SCALAR,
    NULL,
    Context,
    Convert,
    mapping_pairs,
    plain_value,
    read_field,
    suggest,
)

PARAM_TYPES = ("string", "int", "bool", "choice")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


# ---------------------------------------------------------------- workflow and params


def read_workflow(ctx: Context, root: Node, text: str) -> Workflow | None:
    values, _ = read_field(ctx, root, _WORKFLOW, "the workflow", required=("name", "steps"))
    drafts: list[StepDraft] = values.pop("steps", None) or []
    schedules = finish_schedules(
        ctx, values.pop("schedules", None) or [], values.get("name"), values.get("params", ())
    )
    _check_graph(ctx, drafts)
    _check_references(ctx, drafts, ctx.param_names)
    _check_editable(ctx, drafts, ctx.param_names)
    if ctx.items:
        return None
    values.setdefault("description", "")
    values.setdefault("params", ())
    for optional in ("env", "access"):  # None: already reported
        if values.get(optional) is None:
            values.pop(optional, None)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    steps = tuple(d.step for d in drafts if d.step is not None)
    return Workflow(
        steps=steps, schedules=schedules, source=ctx.path, digest=digest, text=text, **values
    )


def _workflow_name(ctx: Context, node: Node, key: str) -> str | None:
    name = text_value(ctx, node, key)
    if name is not None and not _NAME.fullmatch(name):
        hint = "use lowercase letters, digits, - and _ (at most 64), like deploy-api"
        ctx.add(node, f"invalid workflow name `{name}`", hint)
    return name


def _params(ctx: Context, node: Node, key: str) -> tuple[ParamSpec, ...]:
    specs = []
    for key_node, name, value in mapping_pairs(ctx, node, key, "write name: {type: string}") or ():
        identifier_value(ctx, key_node, name, "param", "params.<name>")
        ctx.param_names.add(name)
        spec = _param(ctx, name, value)
        specs.append(spec)
    return tuple(spec for spec in specs if spec is not None)


def _param(ctx: Context, name: str, node: Node) -> ParamSpec | None:
    if isinstance(node, ScalarNode) and node.tag == NULL:
        return ParamSpec(name=name)
    before = len(ctx.items)
    values, nodes = read_field(ctx, node, _PARAM, f"param `{name}`")
    default = values.pop("default", None)
    kind = values.get("type") or "string"
    if "pattern" in nodes and kind != "string":
        ctx.add(nodes["pattern"], f"pattern only applies to string params, not {kind}", "remove it")
    check_choices(ctx, node, nodes, kind, f"param `{name}`")
    if len(ctx.items) > before:
        return None
    return _with_default(ctx, ParamSpec(name=name, **values), default)


def _with_default(ctx: Context, spec: ParamSpec, node: Node | None) -> ParamSpec | None:
    if node is None or (isinstance(node, ScalarNode) and node.tag == NULL):
        return spec
    if spec.required:
        hint = "a required param never uses its default; remove required or the default"
        ctx.add(node, f"param `{spec.name}` is required and has a default", hint)
        return None
    raw = plain_value(node)  # typed YAML for int/bool params, the text as written for the rest
    if raw is NOT_SCALAR:
        ctx.add(node, f"the default of param `{spec.name}` must be one value", "write default: x")
        return None
    try:
        return replace(
            spec, default=coerce_value(spec, raw if spec.type in ("int", "bool") else node.value)
        )
    except ParamError as exc:
        problem = exc.problems[0]
        ctx.add(node, f"default of param `{spec.name}`: {problem.message}", problem.hint)
        return None


# ---------------------------------------------------------------- graph and references


def _check_graph(ctx: Context, drafts: list[StepDraft]) -> None:
    ids = [d.id for d in drafts]
    for draft in drafts:
        for need in draft.needs:
            if need not in ids:
                hint = suggest(need, ids, "steps")
                ctx.add(draft.needs_node, f"step `{draft.id}` needs unknown step `{need}`", hint)
    cycle = find_cycle({d.id: [n for n in d.needs if n in ids] for d in drafts})
    if cycle:
        first = next(d for d in drafts if d.id == cycle[0])
        hint = "remove one of these needs so the steps can run in order"
        ctx.add(first.needs_node, f"steps form a cycle: {' -> '.join(cycle)}", hint)


def _check_references(ctx: Context, drafts: list[StepDraft], params: set[str]) -> None:
    ids = [d.id for d in drafts]
    graph = {d.id: d.needs for d in drafts}
    for draft in drafts:
        upstream = transitive_needs(graph, draft.id)
        for node, refs, key in draft.exprs:
            for kind, name in sorted(refs):
                problem = _reference_problem(kind, name, draft.id, params, ids, upstream)
                if problem:
                    ctx.add(node, f"`{key}` of step `{draft.id}` {problem[0]}", problem[1])


def _check_editable(ctx: Context, drafts: list[StepDraft], params: set[str]) -> None:
    for draft in drafts:
        gate = draft.step.action if draft.step is not None else None
        if not isinstance(gate, ApprovalGate):
            continue
        for name in gate.editable_params:
            if name not in params:
                hint = suggest(name, sorted(params), "params") if params else "declare it"
                ctx.add(draft.node, f"step `{draft.id}` lets approvers edit unknown param "
                                    f"`{name}`", hint)  # fmt: skip


def _reference_problem(
    kind: str, name: str, step_id: str, params: set[str], ids: list[str], upstream: set[str]
) -> tuple[str, str] | None:
    if kind == "params" and name not in params:
        hint = suggest(name, sorted(params), "params") if params else "declare it under params:"
        return f"reads params.{name}, which is not declared", hint
    if kind == "steps" and name == step_id:
        return f"reads its own steps.{name}", "a step cannot read itself; use a later step"
    if kind == "steps" and name not in ids:
        return f"reads unknown step `{name}`", suggest(name, ids, "steps")
    if kind == "steps" and name not in upstream:
        hint = f"add {name} to the needs of `{step_id}` (directly or through another step)"
        return f"reads steps.{name} but does not need it", hint
    return None


# ---------------------------------------------------------------- schemas

_PARAM = {
    "type": ("type", word_value(PARAM_TYPES)),
    "required": ("required", flag_value),
    "default": ("default", node_value),
    "pattern": ("pattern", pattern_value),
    "choices": ("choices", choice_list),
    "help": ("help", text_value),
}
_WORKFLOW: dict[str, tuple[str, Convert]] = {
    "name": ("name", _workflow_name),
    "description": ("description", text_value),
    "max_parallel": ("max_parallel", count_value(1, 1000)),
    "params": ("params", _params),
    "steps": ("steps", read_steps),
    "schedules": ("schedules", read_schedules),
    "env": ("env", read_env),
    "access": ("access", read_access),
}
