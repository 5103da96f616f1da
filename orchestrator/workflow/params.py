"""Run parameters: parse `key=value` text, apply defaults and types, explain every problem.

Values arrive as strings from a Slack command or the CLI, or already typed from
a modal; both go through the same coercion. An empty string counts as "not
given", so a default applies and a required parameter is reported missing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.errors import ParamError, ParamProblem
from orchestrator.workflow.definitions import ParamSpec, Workflow
from orchestrator.workflow.numbers import NumberError, parse_whole

_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})


class _Invalid(Exception):
    """One value did not fit its parameter's type; internal to this module."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Turn ["service=api", "msg=two words"] into a dict; ParamError lists every bad item."""
    values: dict[str, str] = {}
    problems: list[ParamProblem] = []
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(
                ParamProblem(str(item), "is not a name=value assignment", "write it as name=value")
            )
        elif name in values:
            problems.append(
                ParamProblem(name, "is given twice", f"keep one of {name}=... assignments")
            )
        else:
            values[name] = value
    if problems:
        raise ParamError(problems)
    return values


def coerce_value(spec: ParamSpec, value: Any) -> Any:
    """`value` converted to the parameter's type and checked; ParamError if it does not fit."""
    try:
        return _coerce(spec, value)
    except _Invalid as bad:
        raise ParamError([ParamProblem(spec.name, bad.message, bad.hint)]) from None


def coerce_params(workflow: Workflow, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter with its typed value (or default, or None if optional)."""
    problems = [_unknown(workflow, name) for name in raw if not _declared(workflow, name)]
    values: dict[str, Any] = {}
    for spec in workflow.params:
        value = raw.get(spec.name)
        if _given(value):
            try:
                values[spec.name] = _coerce(spec, value)
            except _Invalid as bad:
                problems.append(ParamProblem(spec.name, bad.message, bad.hint))
        elif spec.required:
            problems.append(ParamProblem(spec.name, "is required", _missing_hint(spec)))
        else:
            values[spec.name] = spec.default
    if problems:
        raise ParamError(problems)
    return values


def missing_required(workflow: Workflow, raw: Mapping[str, Any]) -> list[ParamSpec]:
    """Required parameters that `raw` does not give a value for, in declaration order."""
    return [s for s in workflow.params if s.required and not _given(raw.get(s.name))]


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _declared(workflow: Workflow, name: str) -> bool:
    return any(spec.name == name for spec in workflow.params)


def _unknown(workflow: Workflow, name: Any) -> ParamProblem:
    known = [spec.name for spec in workflow.params]
    close = difflib.get_close_matches(str(name), known, n=1)
    if close:
        hint = f"did you mean {close[0]}?"
    elif known:
        hint = f"{workflow.name} takes: {', '.join(known)}"
    else:
        hint = f"{workflow.name} takes no parameters"
    return ParamProblem(str(name), "is not a parameter of this workflow", hint)


def _missing_hint(spec: ParamSpec) -> str:
    example = spec.choices[0] if spec.choices else "..."
    hint = f"add {spec.name}={example}"
    if spec.choices:
        hint += f" (one of {', '.join(spec.choices)})"
    return f"{hint}; {spec.help}" if spec.help else hint


def _coerce(spec: ParamSpec, value: Any) -> Any:
    if spec.type == "int":
        return _to_int(value)
    if spec.type == "bool":
        return _to_bool(value)
    text = _to_text(value)
    if spec.type == "choice":
        return _to_choice(spec, text)
    if spec.pattern is not None and not re.fullmatch(spec.pattern, text):
        raise _Invalid(
            f"{text!r} does not match the pattern {spec.pattern}",
            spec.help or f"give a value that matches {spec.pattern} as a whole",
        )
    return text


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Invalid(f"expected text, got {type(value).__name__}", "give a plain text value")


def _to_int(value: Any) -> int:
    try:  # the one number rule, shared with input gates and Slack forms
        return parse_whole(value)
    except NumberError as exc:
        if "too large" in str(exc):
            raise _Invalid(str(exc).split(";")[0], "give a smaller number") from None
        exponent = " (write 1000, not 1e3)" if "1e3" in str(exc) else ""
        raise _Invalid(f"{value!r} is not a whole number{exponent}",
                       "give digits only, like 3") from None  # fmt: skip


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str):
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Invalid(f"{value!r} is not true or false", "use true/false, yes/no or 1/0")


def _to_choice(spec: ParamSpec, text: str) -> str:
    if text in spec.choices:
        return text
    close = difflib.get_close_matches(text, spec.choices, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise _Invalid(
        f"{text!r} is not one of the choices", f"{hint}choose one of {', '.join(spec.choices)}"
    )
