"""The safe condition language of `if:`, `auto_approve_if:` and `{{ }}` templates.

An expression is parsed with `ast`, checked against a small whitelist at load
time (expression_syntax.py: a typo fails `opsloop validate`, not a run), and evaluated by
`simpleeval`; nothing here calls eval() or exec(). References such as
`params.service` or `steps.build.outputs.image` are replaced by plain names
before evaluation and resolved from a context mapping:

    {"params": {name: value},
     "steps": {id: {"status": str, "outcome": str | None, "outputs": {key: value}}},
     "needs": [direct needs of the step being decided],      # optional
     "upstream": [everything it needs transitively]}          # optional

`build_context` makes one from run results and `should_run` applies the
default rule (a step without `if:` runs only when all its needs succeeded).
"""

from __future__ import annotations

import ast
import functools
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression, safe_add, safe_mult

from orchestrator.errors import ExpressionError
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.expression_syntax import check_syntax
from storage.statuses import FINISHED_STEP

MAX_LENGTH = 1000
MAX_EXPONENT = 64
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    """A compiled expression; `paths` are the references it reads, in `ref<i>` order."""

    text: str
    tree: ast.expr
    paths: tuple[tuple[str | int, ...], ...]
    uses_status: bool

    def references(self) -> set[tuple[str, str]]:
        """("params", name) and ("steps", id) pairs this expression reads."""
        return {(str(path[0]), str(path[1])) for path in self.paths}

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """The expression's truth value; ExpressionError if evaluation fails."""
        return bool(self.value(context))

    def value(self, context: Mapping[str, Any]) -> Any:
        """The expression's value; ExpressionError if evaluation fails."""
        names = {f"ref{i}": _resolve(path, context) for i, path in enumerate(self.paths)}
        evaluator = EvalWithCompoundTypes(
            operators=_OPERATORS, functions=_status_functions(context), names=names
        )
        try:
            return evaluator.eval(self.text, previously_parsed=self.tree)
        except (InvalidExpression, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise ExpressionError(
                f"could not evaluate `{self.text}`: {exc}",
                self.text,
                "fix the expression or the values it reads; a missing output is None",
            ) from exc


@dataclass(frozen=True)
class Template:
    """Text with `{{ expression }}` placeholders, compiled once."""

    text: str
    parts: tuple[str | Condition, ...]

    def references(self) -> set[tuple[str, str]]:
        """("params", name) and ("steps", id) pairs the placeholders read."""
        refs: set[tuple[str, str]] = set()
        for part in self.parts:
            if isinstance(part, Condition):
                refs |= part.references()
        return refs

    def render(self, context: Mapping[str, Any]) -> str:
        """The text with every placeholder replaced by its value."""
        return "".join(
            part if isinstance(part, str) else format_value(part.value(context))
            for part in self.parts
        )


def compile_condition(text: str) -> Condition:
    """Parse and check an expression; ExpressionError says what is wrong and how to fix it."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression, got {text!r}", str(text), "quote it")
    if not text.strip():
        raise ExpressionError("empty expression", text, "write a condition like success()")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}",
            text[:80],
            "move the logic into a python step and test its output",
        )
    return _compile(text)


@functools.lru_cache(maxsize=1024)
def _compile(text: str) -> Condition:
    tree, paths, uses_status = check_syntax(text)
    return Condition(text, tree, paths, uses_status)


def compile_template(text: str) -> Template:
    """Split text into literal parts and compiled `{{ }}` placeholders."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected text, got {text!r}", str(text), "quote it")
    return _compile_template(text)


@functools.lru_cache(maxsize=1024)
def _compile_template(text: str) -> Template:
    parts: list[str | Condition] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[position : match.start()])
        parts.append(compile_condition(match.group(1)))
        position = match.end()
    parts.append(text[position:])
    literals = [part for part in parts if isinstance(part, str)]
    if any("{{" in part for part in literals):
        raise ExpressionError(
            "unclosed `{{` placeholder", text, "close it with }}, e.g. {{ params.name }}"
        )
    return Template(text, tuple(part for part in parts if part != ""))


def render_text(template: str, context: Mapping[str, Any]) -> str:
    """Render one template string against a context."""
    return compile_template(template).render(context)


def render_argv(argv: Sequence[str], context: Mapping[str, Any]) -> list[str]:
    """Render each argv element on its own: a value never splits into more arguments."""
    return [render_text(arg, context) for arg in argv]


def format_value(value: Any) -> str:
    """How a value reads inside a template: None is empty, booleans are true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def step_outcome(status: str | None, continue_on_error: bool) -> str | None:
    """How a finished step counts for its dependents; None while it is not finished."""
    if status not in FINISHED_STEP:
        return None
    if status == "failed" and continue_on_error:
        return "succeeded"
    return status


def build_context(
    workflow: Workflow,
    step_id: str,
    params: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
) -> Mapping[str, Any]:
    """The evaluation context of `step_id`, from {step id: {"status", "outputs"}} results.

    Built as it is read: a step's entry when a reference or a status function reads it,
    `upstream` when failure() asks. Building all of it cost the run's size per `if:`,
    so a wide fan-out whose steps each had an `if:` cost N²."""
    return _Context(workflow, step_id, params, results)


class _Context(Mapping[str, Any]):
    """{"params", "steps", "needs", "upstream"} of one step, each made when first read."""

    def __init__(self, workflow: Workflow, step_id: str, params: Mapping[str, Any],
                 results: Mapping[str, Mapping[str, Any]]) -> None:  # fmt: skip
        self._workflow, self._step_id, self._made = workflow, step_id, {}
        self._make: dict[str, Callable[[], Any]] = {
            "params": lambda: dict(params),
            "steps": lambda: _Steps(workflow, results),
            "needs": lambda: list(workflow.step(step_id).needs),
            "upstream": lambda: sorted(workflow.upstream(step_id), key=workflow.position),
        }

    def __getitem__(self, key: str) -> Any:
        if key not in self._made:
            self._made[key] = self._make[key]()
        return self._made[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._make)

    def __len__(self) -> int:
        return len(self._make)


class _Steps(Mapping[str, Mapping[str, Any]]):
    """{step id: {"status", "outcome", "outputs"}} for every step of the workflow."""

    def __init__(self, workflow: Workflow, results: Mapping[str, Mapping[str, Any]]) -> None:
        self._workflow, self._results = workflow, results

    def __getitem__(self, step_id: str) -> Mapping[str, Any]:
        step = self._workflow.by_id[step_id]
        result = self._results.get(step_id, {})
        status = str(result.get("status") or "pending")  # plain text, also for StrEnums
        return {"status": status, "outcome": step_outcome(status, step.continue_on_error),
                "outputs": dict(result.get("outputs") or {})}  # fmt: skip

    def __iter__(self) -> Iterator[str]:
        return iter(self._workflow.by_id)

    def __len__(self) -> int:
        return len(self._workflow.by_id)


def should_run(
    workflow: Workflow,
    step_id: str,
    params: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Decide, once all needs have finished, whether `step_id` runs (False means skipped)."""
    step = workflow.step(step_id)
    if step.condition is None:  # the implicit success(), without building the whole context
        return all(_need_outcome(workflow, results, need) == "succeeded" for need in step.needs)
    context = build_context(workflow, step_id, params, results)
    condition = step.condition
    compiled = compile_condition(condition)
    if compiled.uses_status:
        return compiled.evaluate(context)
    return _success(context) and compiled.evaluate(context)


def _resolve(path: tuple[str | int, ...], context: Mapping[str, Any]) -> Any:
    value: Any = context.get(str(path[0]))
    if path[0] == "steps" and _get(value, path[1]) is None:
        return "pending" if path[2] == "status" else None
    for key in path[1:]:
        value = _get(value, key)
    return value


def _get(container: Any, key: str | int) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, list | tuple) and isinstance(key, int) and -len(container) <= key:
        return container[key] if key < len(container) else None
    return None


def _status_functions(context: Mapping[str, Any]) -> dict[str, Callable[[], bool]]:
    return {
        "success": lambda: _success(context),
        "failure": lambda: _failure(context),
        "always": lambda: True,
    }


def _outcomes(context: Mapping[str, Any], key: str) -> list[Any]:
    steps = context.get("steps") or {}
    ids = context.get(key)
    if ids is None:
        ids = context.get("needs") if key == "upstream" else None
    ids = list(steps) if ids is None else ids
    return [(steps.get(i) or {}).get("outcome") for i in ids]


def _need_outcome(
    workflow: Workflow, results: Mapping[str, Mapping[str, Any]], need: str
) -> str | None:
    status = str(results.get(need, {}).get("status") or "pending")
    return step_outcome(status, workflow.step(need).continue_on_error)


def _success(context: Mapping[str, Any]) -> bool:
    return all(outcome == "succeeded" for outcome in _outcomes(context, "needs"))


def _failure(context: Mapping[str, Any]) -> bool:
    return any(outcome == "failed" for outcome in _outcomes(context, "upstream"))


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Ordering comparisons with None (a missing output) are False instead of an error."""
    return lambda a, b: False if a is None or b is None else compare(a, b)


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, int | float) and abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    if isinstance(base, int | float) and abs(base) > 10**12:
        raise ValueError("base of ** is too large")
    return base**exponent


def _contains(item: Any, container: Any) -> bool:
    return container is not None and item in container


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: safe_add,
    ast.Sub: operator.sub,
    ast.Mult: safe_mult,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: _ordered(operator.lt),
    ast.LtE: _ordered(operator.le),
    ast.Gt: _ordered(operator.gt),
    ast.GtE: _ordered(operator.ge),
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.In: _contains,
    ast.NotIn: lambda item, container: not _contains(item, container),
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
