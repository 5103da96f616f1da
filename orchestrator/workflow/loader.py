"""Load workflow YAML files into `orchestrator.workflow.definitions`, validating everything once.

The public entry point: files, directories, `parse_workflow`, `check_text`,
`validate_paths`. The file is composed into YAML nodes (not plain dicts) so every
key and value keeps its line (`orchestrator.workflow.yaml_nodes`), and each mapping is
read through a small schema (key -> dataclass field, converter;
`orchestrator.workflow.yaml_converters`, `orchestrator.workflow.step_schema`,
`orchestrator.workflow.workflow_schema`). Problems become `DefinitionError`s reading
`path:line: message (hint: ...)`; checking goes on after the first problem, so
`validate_paths` reports all of them while `load_workflow` raises the first.
Python targets are only checked for their `module:function` shape, never imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import DefinitionError
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.gate_definitions import ApprovalGate, DecisionGate, InputGate
from orchestrator.workflow.step_schema import STEP_SCHEMA
from orchestrator.workflow.workflow_schema import read_workflow
from orchestrator.workflow.yaml_converters import parse_duration
from orchestrator.workflow.yaml_nodes import Context, compose_nodes

__all__ = [
    "check_text",
    "load_workflow",
    "load_workflows",
    "parse_duration",
    "parse_workflow",
    "validate_paths",
]

Gate = ApprovalGate | DecisionGate | InputGate

# ---------------------------------------------------------------- public API


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
    ctx = Context(source)
    root = compose_nodes(ctx, text)
    workflow = read_workflow(ctx, root, text) if root is not None else None
    problems = sorted(ctx.items, key=lambda err: err.line)
    return (None if problems else workflow), problems


def check_gate(
    kind: str, keys: Mapping[str, Any], source: str
) -> tuple[Gate | None, list[DefinitionError]]:
    """A gate given as Python values (`ctx.ask`) read exactly as the keys of a `kind:`
    step, with the same forms, defaults and checks: the gate, or None and the problems.
    `keys` must be JSON values (JSON is YAML; it also turns tuples into lists)."""
    ctx = Context(source)
    data = json.loads(json.dumps({"message": "", **keys}))
    # YAML, not JSON text: JSON escapes an emoji as a surrogate pair, which PyYAML reads
    # back as two lone surrogates that no database column accepts.
    root = yaml.compose(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), Loader=yaml.SafeLoader
    )
    gate = STEP_SCHEMA[kind][1](ctx, root, kind)
    return (None if ctx.items else gate), list(ctx.items)


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


def load_valid_workflows(
    directory: str | Path,
) -> tuple[dict[str, Workflow], dict[str | None, DefinitionError]]:
    """The valid workflows under `directory`, and each invalid file's first problem keyed
    by the `name:` it seems to declare (None when even that cannot be read)."""
    found: dict[str, Workflow] = {}
    broken: dict[str | None, DefinitionError] = {}
    for file in _workflow_files(Path(directory)):
        try:
            workflow = load_workflow(file)
            if workflow.name in found:
                raise _duplicate(workflow, found[workflow.name])
        except DefinitionError as err:
            broken.setdefault(_declared_name(file), err)
            continue
        found[workflow.name] = workflow
    return found, broken


def _declared_name(file: Path) -> str | None:
    try:
        match = re.search(r"^name:\s*['\"]?([\w.-]+)", file.read_text(errors="replace"), re.M)
    except OSError:
        return None
    return match.group(1) if match else file.stem


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


# ---------------------------------------------------------------- files


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
