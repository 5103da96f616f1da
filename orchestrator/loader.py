"""Load workflow YAML files into `orchestrator.definitions`, validating everything once.

The file is composed into YAML nodes (not plain dicts) so every key and value
keeps its line, and each mapping is read through a small schema (key ->
dataclass field, converter). Problems become `DefinitionError`s reading
`path:line: message (hint: ...)`; checking goes on after the first problem, so
`validate_paths` reports all of them while `load_workflow` raises the first.
Python targets are only checked for their `module:function` shape, never imported.
"""

from __future__ import annotations

import difflib
import hashlib
import keyword
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.definitions import (
    NOTIFY_MODES,
    RETRY_ON,
    STEP_KINDS,
    ApprovalGate,
    Approvers,
    DecisionGate,
    Escalation,
    InputField,
    InputGate,
    Option,
    ParamSpec,
    PythonAction,
    RetryPolicy,
    ShellAction,
    Step,
    Workflow,
    find_cycle,
    transitive_needs,
)
from orchestrator.errors import DefinitionError, ExpressionError, ParamError
from orchestrator.expressions import compile_condition, compile_template
from orchestrator.params import coerce_value

PARAM_TYPES = ("string", "int", "bool", "choice")
FIELD_TYPES = ("text", "number", "choice", "multiline")
MAX_DURATION_S = 365 * 86400.0

_NULL = "tag:yaml.org,2002:null"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_STEP_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TARGET = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NOT_SCALAR = object()
_ALIASES = {"depends_on": "needs", "depends": "needs", "requires": "needs", "when": "if",
            "condition": "if", "run": "shell", "command": "shell", "cmd": "shell",
            "inputs": "params", "parameters": "params", "jobs": "steps", "tasks": "steps",
            "approvers": "deciders/responders", "deciders": "approvers/responders",
            "responders": "approvers/deciders", "choices": "options",
            "retries": "retry"}  # fmt: skip
_MISSING = {
    "name": "add name: my-workflow at the top of the file",
    "steps": "add steps: with at least one step",
    "id": "add id: <name> to the step",
    "message": "add message: the question people see in Slack",
    "options": "add options: [a, b]",
    "fields": "add fields: {ticket: {type: text}}",
    "value": "write the option as {value: canary, label: Canary first}",
}

Convert = Callable[["_Context", Node, str], Any]


@dataclass
class _Context:
    """Problems found in one file so far, and the expressions of the step being read."""

    path: str
    items: list[DefinitionError] = field(default_factory=list)
    exprs: list[tuple[Node, set[tuple[str, str]], str]] = field(default_factory=list)

    def add(self, node: Node | None, message: str, hint: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.items.append(DefinitionError(self.path, line, message, hint))


@dataclass
class _Draft:
    """What the graph and reference checks need from a step, even a broken one."""

    id: str
    node: Node
    needs: tuple[str, ...]
    needs_node: Node | None
    exprs: list[tuple[Node, set[tuple[str, str]], str]]
    step: Step | None = None


# ---------------------------------------------------------------- public API


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


def parse_workflow(text: str, source: str = "<string>") -> Workflow:
    """Validate YAML text and build its Workflow; raises the first DefinitionError."""
    workflow, problems = check_text(text, source)
    if workflow is None:
        raise problems[0]
    return workflow


def check_text(
    text: str, source: str = "<string>"
) -> tuple[Workflow | None, list[DefinitionError]]:
    """The Workflow (None when invalid) and every problem found, ordered by line."""
    ctx = _Context(source)
    root = _compose(ctx, text)
    workflow = _workflow(ctx, root, text) if root is not None else None
    problems = sorted(ctx.items, key=lambda err: err.line)
    return (None if problems else workflow), problems


def load_workflow(path: str | Path) -> Workflow:
    """Read, validate and build one workflow file."""
    return parse_workflow(_read_file(Path(path)), str(path))


def load_workflows(directory: str | Path) -> dict[str, Workflow]:
    """Every *.yml / *.yaml under `directory` (recursively), keyed by workflow name."""
    found: dict[str, Workflow] = {}
    for file in _workflow_files(Path(directory)):
        workflow = load_workflow(file)
        if workflow.name in found:
            raise _duplicate(workflow, found[workflow.name])
        found[workflow.name] = workflow
    return found


def validate_paths(paths: Iterable[str | Path]) -> list[DefinitionError]:
    """Every problem in the given files and directories, including duplicate names."""
    problems: list[DefinitionError] = []
    names: dict[str, Workflow] = {}
    seen: set[Path] = set()
    for path in map(Path, paths):
        try:
            files = [path] if path.is_file() else _workflow_files(path, must_exist=True)
        except DefinitionError as err:
            problems.append(err)
            continue
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                problems.extend(_validate_file(file, names))
    return problems


def _validate_file(file: Path, names: dict[str, Workflow]) -> list[DefinitionError]:
    """Problems of one file; remembers its workflow name to catch duplicates."""
    try:
        workflow, problems = check_text(_read_file(file), str(file))
    except DefinitionError as err:
        return [err]
    if workflow is not None and workflow.name in names:
        return [_duplicate(workflow, names[workflow.name])]
    if workflow is not None:
        names[workflow.name] = workflow
    return problems


# ---------------------------------------------------------------- files and YAML


def _read_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        hint = "check the path and its permissions"
        raise DefinitionError(str(path), 1, f"cannot read: {exc.strerror}", hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DefinitionError(str(path), line, "not UTF-8 text", "save it as UTF-8") from None


def _workflow_files(directory: Path, must_exist: bool = False) -> list[Path]:
    if not directory.is_dir():
        raise DefinitionError(str(directory), 1, "no such file or directory", "check the path")
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in (".yml", ".yaml")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )
    if must_exist and not files:
        hint = "put each workflow in its own .yml file here"
        raise DefinitionError(str(directory), 1, "no *.yml or *.yaml files here", hint)
    return files


def _duplicate(workflow: Workflow, first: Workflow) -> DefinitionError:
    line = 1
    root = yaml.compose(_read_file(Path(workflow.source)), Loader=yaml.SafeLoader)
    for key, _ in root.value:
        line = key.start_mark.line + 1 if key.value == "name" else line
    message = f"workflow name `{workflow.name}` is also used by {first.source}"
    return DefinitionError(workflow.source, line, message, "rename one of the two workflows")


def _compose(ctx: _Context, text: str) -> Node | None:
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


def _read(
    ctx: _Context,
    node: Node,
    schema: dict[str, tuple[str, Convert]],
    what: str,
    required: Iterable[str] = (),
) -> tuple[dict[str, Any], dict[str, Node]]:
    """Convert a mapping through `schema`; returns (field values, value nodes by key)."""
    values: dict[str, Any] = {}
    nodes: dict[str, Node] = {}
    for key_node, key, value in _pairs(ctx, node, what, f"known keys: {', '.join(schema)}") or ():
        if key not in schema:
            ctx.add(key_node, f"unknown key `{key}` in {what}", _suggest(key, schema))
            continue
        attr, convert = schema[key]
        nodes[key] = value
        values[attr] = convert(ctx, value, key)
    missing = [key for key in required if key not in nodes]
    for key in missing if isinstance(node, MappingNode) else ():
        ctx.add(node, f"{what} has no {key}", _MISSING[key])
    return values, nodes


def _pairs(ctx: _Context, node: Node, what: str, hint: str) -> list[tuple[Node, str, Node]] | None:
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


def _suggest(word: str, known: Iterable[str], noun: str = "keys") -> str:
    known = list(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    close += [k for k in _ALIASES.get(word, "").split("/") if k in known]
    if close:
        return f"did you mean `{close[0]}`?"
    return f"known {noun}: {', '.join(known)}" if known else f"there are no {noun} to use here"


def _value(node: Node) -> Any:
    """A scalar's YAML value (int, float, bool, str...); `_NOT_SCALAR` for lists and mappings."""
    if not isinstance(node, ScalarNode):
        return _NOT_SCALAR
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return node.value


# ---------------------------------------------------------------- converters


def _text(ctx: _Context, node: Node, key: str) -> str | None:
    if isinstance(node, ScalarNode) and node.tag != _NULL:
        return node.value
    ctx.add(node, f"{key} must be text", f"write {key}: followed by a value on the same line")
    return None


def _flag(ctx: _Context, node: Node, key: str) -> bool | None:
    if isinstance(value := _value(node), bool):
        return value
    ctx.add(node, f"{key} must be true or false", f"write {key}: true or {key}: false")
    return None


def _count(low: int, high: int) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> int | None:
        if type(value := _value(node)) is int and low <= value <= high:
            return value
        ctx.add(node, f"{key} must be a whole number from {low} to {high}", f"e.g. {key}: {low}")
        return None

    return convert


def _seconds(allow_zero: bool = False) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> float | None:
        try:
            return parse_duration(_value(node), allow_zero=allow_zero)
        except ValueError:
            hint = "write seconds (30) or a duration like 30s, 5m, 2h, 1h30m"
            ctx.add(node, f"{key} must be a duration of at most 365d", hint)
            return None

    return convert


def _word(allowed: tuple[str, ...]) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> str | None:
        value = _text(ctx, node, key)
        if value is None or value in allowed:
            return value
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.4)
        maybe = f"did you mean {close[0]}? " if close else ""
        ctx.add(node, f"{key} `{value}` is not allowed", f"{maybe}use one of: {', '.join(allowed)}")
        return None

    return convert


def _texts(ctx: _Context, node: Node, key: str, scalar_ok: bool = True) -> tuple[str, ...] | None:
    """A list of text items; a single item on its own is accepted when `scalar_ok`."""
    if scalar_ok and isinstance(node, ScalarNode) and node.tag != _NULL:
        return (node.value,)
    items = node.value if isinstance(node, SequenceNode) else [node]
    if all(isinstance(i, ScalarNode) and i.tag != _NULL for i in items):
        return tuple(item.value for item in items)
    ctx.add(node, f"{key} must be a list of text items", f"write {key}: [a, b]")
    return None


def _choice_list(ctx: _Context, node: Node, key: str) -> tuple[str, ...] | None:
    values = _texts(ctx, node, key, scalar_ok=False)
    if values is not None and (not values or len(set(values)) != len(values)):
        ctx.add(node, f"{key} must be a non-empty list without repeats", f"write {key}: [a, b]")
        return None
    return values


def _retry_on(ctx: _Context, node: Node, key: str) -> frozenset[str] | None:
    values = frozenset(_texts(ctx, node, key) or ())
    if values and values <= RETRY_ON:
        return values
    ctx.add(node, f"{key} must list what to retry on", "use on: [error], [timeout] or both")
    return None


def _slack_ids(pattern: re.Pattern[str], example: str) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> tuple[str, ...] | None:
        ids = _texts(ctx, node, key)
        bad = [i for i in ids or () if not pattern.fullmatch(i)]
        if bad:
            hint = f"use Slack ids like {example} (profile > Copy member ID), not names"
            ctx.add(node, f"{', '.join(bad)} in {key} is not a Slack id", hint)
            return None
        return ids

    return convert


def _compiled(compile_: Callable[[str], Any]) -> Convert:
    """Text that must compile as a condition or template; its references are kept for later."""

    def convert(ctx: _Context, node: Node, key: str) -> str | None:
        text = _text(ctx, node, key)
        try:
            if text is not None:
                ctx.exprs.append((node, compile_(text).references(), key))
        except ExpressionError as exc:
            ctx.add(node, f"{key}: {exc.message}", exc.hint)
            return None
        return text

    return convert


def _nested(schema: dict[str, tuple[str, Convert]], build: Callable[..., Any]) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> Any:
        before = len(ctx.items)
        values, _ = _read(ctx, node, schema, key)
        return build(**values) if len(ctx.items) == before else None

    return convert


def _pattern(ctx: _Context, node: Node, key: str) -> str | None:
    pattern = _text(ctx, node, key)
    try:
        return re.compile(pattern).pattern if pattern is not None else None
    except re.error as exc:
        ctx.add(node, f"pattern is not a valid regular expression: {exc}", "fix the pattern")
        return None


def _node(ctx: _Context, node: Node, key: str) -> Node:
    """Keep the node itself; it is checked once the rest of the mapping is known."""
    return node


# ---------------------------------------------------------------- workflow and params


def _workflow(ctx: _Context, root: Node, text: str) -> Workflow | None:
    values, _ = _read(ctx, root, _WORKFLOW, "the workflow", required=("name", "steps"))
    drafts: list[_Draft] = values.pop("steps", None) or []
    _check_graph(ctx, drafts)
    _check_references(ctx, drafts, {p.name for p in values.get("params") or ()})
    _check_editable(ctx, drafts, {p.name for p in values.get("params") or ()})
    if ctx.items:
        return None
    values.setdefault("description", "")
    values.setdefault("params", ())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    steps = tuple(d.step for d in drafts if d.step is not None)
    return Workflow(steps=steps, source=ctx.path, digest=digest, **values)


def _workflow_name(ctx: _Context, node: Node, key: str) -> str | None:
    name = _text(ctx, node, key)
    if name is not None and not _NAME.fullmatch(name):
        hint = "use lowercase letters, digits, - and _ (at most 64), like deploy-api"
        ctx.add(node, f"invalid workflow name `{name}`", hint)
    return name


def _identifier(ctx: _Context, node: Node, name: str, noun: str, read_as: str) -> None:
    if not _IDENT.fullmatch(name) or keyword.iskeyword(name):
        hint = f"use letters, digits and _; it is read as {read_as}"
        ctx.add(node, f"invalid {noun} name `{name}`", hint)


def _params(ctx: _Context, node: Node, key: str) -> tuple[ParamSpec, ...]:
    specs = []
    for key_node, name, value in _pairs(ctx, node, key, "write name: {type: string}") or ():
        _identifier(ctx, key_node, name, "param", "params.<name>")
        spec = _param(ctx, name, value)
        specs.append(spec)
    return tuple(spec for spec in specs if spec is not None)


def _param(ctx: _Context, name: str, node: Node) -> ParamSpec | None:
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return ParamSpec(name=name)
    before = len(ctx.items)
    values, nodes = _read(ctx, node, _PARAM, f"param `{name}`")
    default = values.pop("default", None)
    kind = values.get("type") or "string"
    if "pattern" in nodes and kind != "string":
        ctx.add(nodes["pattern"], f"pattern only applies to string params, not {kind}", "remove it")
    _check_choices(ctx, node, nodes, kind, f"param `{name}`")
    if len(ctx.items) > before:
        return None
    return _with_default(ctx, ParamSpec(name=name, **values), default)


def _check_choices(ctx: _Context, node: Node, nodes: dict[str, Node], kind: str, what: str) -> None:
    if "choices" in nodes and kind != "choice":
        ctx.add(nodes["choices"], f"choices need type: choice, not {kind}", "add type: choice")
    if kind == "choice" and "choices" not in nodes:
        ctx.add(node, f"{what} has type choice but no choices", "add choices: [a, b]")


def _with_default(ctx: _Context, spec: ParamSpec, node: Node | None) -> ParamSpec | None:
    if node is None or (isinstance(node, ScalarNode) and node.tag == _NULL):
        return spec
    if spec.required:
        hint = "a required param never uses its default; remove required or the default"
        ctx.add(node, f"param `{spec.name}` is required and has a default", hint)
        return None
    raw = _value(node)  # typed YAML for int/bool params, the text as written for the rest
    if raw is _NOT_SCALAR:
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


# ---------------------------------------------------------------- steps


def _steps(ctx: _Context, node: Node, key: str) -> list[_Draft]:
    if not isinstance(node, SequenceNode) or not node.value:
        ctx.add(node, "steps must be a non-empty list", "start each step with '- id: ...'")
        return []
    drafts: dict[str, _Draft] = {}
    for item in node.value:
        draft = _step(ctx, item)
        if draft is not None and draft.id in drafts:
            hint = f"step ids must be unique; line {_line(drafts[draft.id].node)} uses it already"
            ctx.add(draft.node, f"duplicate step id `{draft.id}`", hint)
        elif draft is not None:
            drafts[draft.id] = draft
    return list(drafts.values())


def _step(ctx: _Context, node: Node) -> _Draft | None:
    ctx.exprs = []
    before = len(ctx.items)
    values, nodes = _read(ctx, node, _STEP, "a step", required=("id",))
    step_id = values.pop("id", None)
    needs = tuple(dict.fromkeys(values.pop("needs", None) or ()))
    _check_kinds(ctx, node, nodes, step_id)
    if step_id is None:
        return None
    draft = _Draft(step_id, node, needs, nodes.get("needs"), ctx.exprs)
    if len(ctx.items) == before:
        draft.step = Step(id=step_id, needs=needs, line=_line(node), **values)
    return draft


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _step_id(ctx: _Context, node: Node, key: str) -> str | None:
    step_id = _text(ctx, node, key)
    if step_id is not None and (not _STEP_ID.fullmatch(step_id) or keyword.iskeyword(step_id)):
        hint = "use lowercase letters, digits and _, starting with a letter (read as steps.<id>)"
        ctx.add(node, f"invalid step id `{step_id}`", hint)
        return None
    return step_id


def _check_kinds(ctx: _Context, node: Node, nodes: dict[str, Node], step_id: str | None) -> None:
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
        if kind in _GATES and key in nodes:
            hint = "a gate waits for people; give it a deadline instead"
            ctx.add(nodes[key], f"{key} applies to python and shell steps, not {kind}", hint)
    if "auto_approve_if" in nodes and kind != "approval":
        hint = "a decision or form has no answer to assume; use if: to skip the step instead"
        ctx.add(nodes["auto_approve_if"], "auto_approve_if only applies to approval gates", hint)


def _python(ctx: _Context, node: Node, key: str) -> PythonAction | None:
    target = _text(ctx, node, key)
    if target is not None and not _TARGET.fullmatch(target):
        hint = "write package.module:function, like orchestrator.examples_tasks:build"
        ctx.add(node, f"python target `{target}` is not module:function", hint)
        return None
    return PythonAction(target) if target is not None else None


def _shell(ctx: _Context, node: Node, key: str) -> ShellAction | None:
    hint = 'write shell: ["echo", "hello"]; it runs without a shell, one item per argument'
    if isinstance(node, ScalarNode) or (isinstance(node, SequenceNode) and not node.value):
        ctx.add(node, "shell must be a non-empty argv list, not a command string", hint)
        return None
    argv = _texts(ctx, node, key, scalar_ok=False)
    if argv is None:
        return None
    for item in node.value:
        _TEMPLATE(ctx, item, "shell argument")
    return ShellAction(argv)


# ---------------------------------------------------------------- gates


def _gate(kind: str, build: Callable[..., Any], required: tuple[str, ...]) -> Convert:
    def convert(ctx: _Context, node: Node, key: str) -> Any:
        before = len(ctx.items)
        values, nodes = _read(ctx, node, _GATES[kind], f"the {kind} gate", ("message", *required))
        if "on_deadline" in nodes and "deadline" not in nodes:
            hint = "add deadline: 2h, or remove on_deadline"
            ctx.add(nodes["on_deadline"], "on_deadline does nothing without a deadline", hint)
        _GATE_CHECKS[kind](ctx, values, nodes)
        return build(**values) if len(ctx.items) == before else None

    return convert


def _check_approval(ctx: _Context, values: dict[str, Any], nodes: dict[str, Node]) -> None:
    required, approvers = values.get("required") or 1, values.get("approvers") or Approvers()
    if approvers.users and not approvers.groups and required > len(approvers.users):
        message = f"required is {required} but only {len(approvers.users)} approvers are listed"
        ctx.add(nodes["required"], message, "lower required or list more approvers")


def _check_decision(ctx: _Context, values: dict[str, Any], nodes: dict[str, Node]) -> None:
    choices = [option.value for option in values.get("options") or ()]
    default = values.get("default")
    if default is not None and choices and default not in choices:
        hint = f"use one of: {', '.join(choices)}"
        ctx.add(nodes["default"], f"default `{default}` is not one of the options", hint)
    if values.get("on_deadline") == "default" and "default" not in nodes:
        hint = "add default: <option>, or use on_deadline: fail"
        ctx.add(nodes["on_deadline"], "on_deadline: default needs a default option", hint)
    values.setdefault("on_deadline", "default" if "default" in nodes else "fail")


def _options(ctx: _Context, node: Node, key: str) -> tuple[Option, ...] | None:
    if not isinstance(node, SequenceNode) or not node.value:
        ctx.add(node, "options must be a non-empty list", "write options: [canary, all_at_once]")
        return None
    options = [_option(ctx, item) for item in node.value]
    if len({o.value for o in options if o}) != len(options):
        ctx.add(node, "options must be unique values", "give every option its own value")
    return tuple(o for o in options if o)


def _option(ctx: _Context, node: Node) -> Option | None:
    if not isinstance(node, MappingNode):
        value = _text(ctx, node, "option")
        return Option(value, value) if value is not None else None
    values, _ = _read(ctx, node, _OPTION, "an option", required=("value",))
    if values.get("value") is None:
        return None
    return Option(values["value"], values.get("label") or values["value"])


def _fields(ctx: _Context, node: Node, key: str) -> tuple[InputField, ...] | None:
    pairs = _pairs(ctx, node, key, "write fields: {ticket: {type: text}}")
    if pairs == []:
        ctx.add(node, "an input gate needs at least one field", _MISSING["fields"])
    fields = [_field(ctx, key_node, name, value) for key_node, name, value in pairs or ()]
    return tuple(f for f in fields if f is not None)


def _field(ctx: _Context, key_node: Node, name: str, node: Node) -> InputField | None:
    _identifier(ctx, key_node, name, "field", "steps.<id>.outputs.<name>")
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return InputField(name=name, label=name)
    values, nodes = _read(ctx, node, _FIELD, f"field `{name}`")
    _check_choices(ctx, node, nodes, values.get("type") or "text", f"field `{name}`")
    return InputField(name=name, **{"label": name, **values})


# ---------------------------------------------------------------- graph and references


def _check_graph(ctx: _Context, drafts: list[_Draft]) -> None:
    ids = [d.id for d in drafts]
    for draft in drafts:
        for need in draft.needs:
            if need not in ids:
                hint = _suggest(need, ids, "steps")
                ctx.add(draft.needs_node, f"step `{draft.id}` needs unknown step `{need}`", hint)
    cycle = find_cycle({d.id: [n for n in d.needs if n in ids] for d in drafts})
    if cycle:
        first = next(d for d in drafts if d.id == cycle[0])
        hint = "remove one of these needs so the steps can run in order"
        ctx.add(first.needs_node, f"steps form a cycle: {' -> '.join(cycle)}", hint)


def _check_references(ctx: _Context, drafts: list[_Draft], params: set[str]) -> None:
    ids = [d.id for d in drafts]
    graph = {d.id: d.needs for d in drafts}
    for draft in drafts:
        upstream = transitive_needs(graph, draft.id)
        for node, refs, key in draft.exprs:
            for kind, name in sorted(refs):
                problem = _reference_problem(kind, name, draft.id, params, ids, upstream)
                if problem:
                    ctx.add(node, f"`{key}` of step `{draft.id}` {problem[0]}", problem[1])


def _check_editable(ctx: _Context, drafts: list[_Draft], params: set[str]) -> None:
    for draft in drafts:
        gate = draft.step.action if draft.step is not None else None
        if not isinstance(gate, ApprovalGate):
            continue
        for name in gate.editable_params:
            if name not in params:
                hint = _suggest(name, sorted(params), "params") if params else "declare it"
                ctx.add(draft.node, f"step `{draft.id}` lets approvers edit unknown param "
                                    f"`{name}`", hint)  # fmt: skip


def _reference_problem(
    kind: str, name: str, step_id: str, params: set[str], ids: list[str], upstream: set[str]
) -> tuple[str, str] | None:
    if kind == "params" and name not in params:
        hint = _suggest(name, sorted(params), "params") if params else "declare it under params:"
        return f"reads params.{name}, which is not declared", hint
    if kind == "steps" and name == step_id:
        return f"reads its own steps.{name}", "a step cannot read itself; use a later step"
    if kind == "steps" and name not in ids:
        return f"reads unknown step `{name}`", _suggest(name, ids, "steps")
    if kind == "steps" and name not in upstream:
        hint = f"add {name} to the needs of `{step_id}` (directly or through another step)"
        return f"reads steps.{name} but does not need it", hint
    return None


# ---------------------------------------------------------------- schemas

_CONDITION = _compiled(compile_condition)
_TEMPLATE = _compiled(compile_template)
_APPROVERS = _nested(
    {"users": ("users", _slack_ids(_USER, "U012AB3CD")),
     "groups": ("groups", _slack_ids(_GROUP, "S012AB3CD"))},
    Approvers,
)  # fmt: skip
_ESCALATE = {
    "after": ("after_s", _seconds()),
    "users": ("users", _slack_ids(_USER, "U012AB3CD")),
    "groups": ("groups", _slack_ids(_GROUP, "S012AB3CD")),
}
_GATE = {
    "message": ("message", _TEMPLATE),
    "allow_requester": ("allow_requester", _flag),
    "deadline": ("deadline_s", _seconds()),
    "remind_every": ("remind_every_s", _seconds()),
    "notify": ("notify", _word(NOTIFY_MODES)),
    "escalate": ("escalate", _nested(_ESCALATE, Escalation)),
}
_GATES: dict[str, dict[str, tuple[str, Convert]]] = {
    "approval": {**_GATE, "approvers": ("approvers", _APPROVERS),
                 "required": ("required", _count(1, 50)),
                 "editable_params": ("editable_params", _texts),
                 "on_deadline": ("on_deadline", _word(("reject", "approve", "fail")))},
    "decision": {**_GATE, "deciders": ("approvers", _APPROVERS),
                 "options": ("options", _options), "default": ("default", _text),
                 "on_deadline": ("on_deadline", _word(("default", "fail")))},
    "input": {**_GATE, "responders": ("approvers", _APPROVERS), "fields": ("fields", _fields),
              "on_deadline": ("on_deadline", _word(("fail",)))},
}  # fmt: skip
_GATE_CHECKS: dict[str, Callable[[_Context, dict[str, Any], dict[str, Node]], None]] = {
    "approval": _check_approval,
    "decision": _check_decision,
    "input": lambda ctx, values, nodes: None,
}
_OPTION = {"value": ("value", _text), "label": ("label", _text)}
_FIELD = {
    "type": ("type", _word(FIELD_TYPES)),
    "required": ("required", _flag),
    "choices": ("choices", _choice_list),
    "label": ("label", _text),
}
_PARAM = {
    "type": ("type", _word(PARAM_TYPES)),
    "required": ("required", _flag),
    "default": ("default", _node),
    "pattern": ("pattern", _pattern),
    "choices": ("choices", _choice_list),
    "help": ("help", _text),
}
_RETRY = {
    "attempts": ("attempts", _count(1, 100)),
    "backoff": ("backoff_s", _seconds(allow_zero=True)),
    "on": ("on", _retry_on),
}
_STEP: dict[str, tuple[str, Convert]] = {
    "id": ("id", _step_id),
    "needs": ("needs", _texts),
    "if": ("condition", _CONDITION),
    "retry": ("retry", _nested(_RETRY, RetryPolicy)),
    "timeout": ("timeout_s", _seconds()),
    "continue_on_error": ("continue_on_error", _flag),
    "idempotent": ("idempotent", _flag),
    "auto_approve_if": ("auto_approve_if", _CONDITION),
    "python": ("action", _python),
    "shell": ("action", _shell),
    "approval": ("action", _gate("approval", ApprovalGate, ())),
    "decision": ("action", _gate("decision", DecisionGate, ("options",))),
    "input": ("action", _gate("input", InputGate, ("fields",))),
}
_WORKFLOW: dict[str, tuple[str, Convert]] = {
    "name": ("name", _workflow_name),
    "description": ("description", _text),
    "max_parallel": ("max_parallel", _count(1, 1000)),
    "params": ("params", _params),
    "steps": ("steps", _steps),
}
