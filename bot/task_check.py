"""`opsloop validate`: that each `python:` task can be imported, beside the file checks.

The workflow language stays pure (it never imports a task), so a module next to
workflows/ passed `validate` and then failed at run time. Here each task is loaded as
the step would load it, in this environment (so `validate` runs the module's top-level
code, as the step would).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.actions import task_signature
from orchestrator.errors import DefinitionError, StepFailed
from orchestrator.workflow.definitions import PythonAction, Workflow
from orchestrator.workflow.loader import load_valid_workflows, load_workflow

HINT = (
    "the module must be importable where opsloop runs: install its package (`pip install "
    "-e .` with the module listed in pyproject.toml) or add its directory to PYTHONPATH "
    "(docs/workflows.md, python)"
)


def task_problems(paths: Iterable[str]) -> list[DefinitionError]:
    """Each python step whose task cannot be loaded, as `path:line: ...` problems."""
    problems = []
    for workflow in _workflows(paths):
        for step in workflow.steps:
            if not isinstance(step.action, PythonAction):
                continue
            try:
                task_signature(step.action.target)
            except StepFailed as exc:
                problems.append(
                    DefinitionError(workflow.source, step.line, f"step `{step.id}`: {exc}", HINT)
                )
    return problems


def _workflows(paths: Iterable[str]) -> list[Workflow]:
    """The valid workflows in `paths` (the invalid ones are reported by validate_paths)."""
    found: list[Workflow] = []
    for path in map(Path, paths):
        try:
            if path.is_file():
                found.append(load_workflow(path))
            elif path.is_dir():
                found.extend(load_valid_workflows(path)[0].values())
        except DefinitionError:
            continue
    return found
