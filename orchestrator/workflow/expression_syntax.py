"""What the expression language allows: parse an expression and check it against a
whitelist, at load time, so that a typo fails `opsloop validate` and not a run.

References such as `params.service` or `steps.build.outputs.image` are replaced by
names `ref<i>`, bound when the expression is evaluated (expressions.py).
"""

from __future__ import annotations

import ast
import warnings

from orchestrator.errors import ExpressionError

MAX_DEPTH = 32
STATUS_FUNCTIONS = ("success", "failure", "always")
STEP_FIELDS = ("status", "outcome", "outputs")
_NAMES_HINT = "read values as params.<name>, steps.<id>.status or steps.<id>.outputs.<key>"
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_COMPOUND = (ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Compare, ast.IfExp, ast.List, ast.Tuple)
_OPS = {
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.Pow, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.In, ast.NotIn, ast.Is, ast.IsNot,
}  # fmt: skip


def check_syntax(text: str) -> tuple[ast.expr, tuple[tuple[str | int, ...], ...], bool]:
    """The checked tree, the references it reads (in `ref<i>` order) and whether it calls
    a status function; ExpressionError says what is not allowed and what to write."""
    paths: list[tuple[str | int, ...]] = []
    calls: set[str] = set()
    tree = _check(_parse(text), text, 0, paths, calls)
    return tree, tuple(paths), bool(calls)


def _parse(text: str) -> ast.expr:
    """Parse inside parentheses so that YAML block scalars may span lines."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "x is 1"
            tree = ast.parse(f"({text}\n)", mode="eval").body
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        where = f" at column {max((getattr(exc, 'offset', None) or 2) - 1, 1)}"
        if line > len(text.splitlines()):
            where = " at the end"
        elif line != 1:
            where = f" on line {line}"
        reason = getattr(exc, "msg", str(exc))
        raise ExpressionError(
            f"invalid expression `{text.strip()}`{where}: {reason}",
            text,
            "expressions look like: steps.test.status == 'succeeded' and params.replicas > 1",
        ) from None
    if isinstance(tree, ast.Tuple):
        raise ExpressionError(
            f"invalid expression `{text.strip()}`: a comma makes it several expressions",
            text,
            "join conditions with `and` / `or`",
        )
    return tree


def _check(node: ast.AST, text: str, depth: int, paths: list, calls: set[str]) -> ast.expr:
    """Reject anything outside the whitelist; replace references by `ref<i>` names."""
    if depth > MAX_DEPTH:
        raise ExpressionError("expression is nested too deeply", text, "split it into steps")
    if isinstance(node, ast.Attribute | ast.Subscript | ast.Name):
        return _reference(node, text, paths)
    if isinstance(node, ast.Call):
        return _call(node, text, calls)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise _unsupported(f"the literal {node.value!r}", text)
        return node
    if not isinstance(node, _COMPOUND):
        raise _unsupported(_describe(node), text)
    for child_field, value in ast.iter_fields(node):
        if isinstance(value, ast.AST) and not isinstance(value, ast.expr_context):
            if isinstance(value, ast.operator | ast.unaryop | ast.boolop):
                if type(value) not in _OPS:
                    raise _unsupported(f"the operator {type(value).__name__}", text)
                continue
            setattr(node, child_field, _check(value, text, depth + 1, paths, calls))
        elif isinstance(value, list):
            checked = [_check_item(item, text, depth + 1, paths, calls) for item in value]
            setattr(node, child_field, checked)
    return node


def _check_item(item: ast.AST, text: str, depth: int, paths: list, calls: set[str]) -> ast.AST:
    if isinstance(item, ast.cmpop):
        if type(item) not in _OPS:
            raise _unsupported(f"the comparison {type(item).__name__}", text)
        return item
    if isinstance(item, ast.Starred):
        raise _unsupported("unpacking with *", text)
    return _check(item, text, depth, paths, calls)


def _reference(node: ast.expr, text: str, paths: list) -> ast.Name:
    """Turn `params.x` / `steps.s.outputs['k']` into a name bound at evaluation time."""
    keys: list[str | int] = []
    current: ast.expr = node
    while not isinstance(current, ast.Name):
        if isinstance(current, ast.Attribute):
            keys.append(current.attr)
            current = current.value
        elif isinstance(current, ast.Subscript) and _is_key(current.slice):
            keys.append(current.slice.value)  # type: ignore[attr-defined]
            current = current.value
        else:
            raise _unsupported("indexing anything but params and steps with a literal key", text)
    path = (current.id, *reversed(keys))
    _check_path(path, text)
    if path not in paths:
        paths.append(path)
    return ast.Name(id=f"ref{paths.index(path)}", ctx=ast.Load())


def _is_key(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (str, int)


def _check_path(path: tuple[str | int, ...], text: str) -> None:
    root = path[0]
    if root == "params" and len(path) == 2 and isinstance(path[1], str):
        return
    if root == "params":
        raise ExpressionError(f"`{text.strip()}`: use params.<name>", text, _NAMES_HINT)
    if (
        root == "steps"
        and len(path) >= 3
        and isinstance(path[1], str)
        and (path[2] == "outputs" or (path[2] in STEP_FIELDS and len(path) == 3))
    ):
        return
    if root == "steps":
        raise ExpressionError(
            f"`{text.strip()}`: a step reference ends in .status, .outcome or .outputs.<key>",
            text,
            "write it like steps.build.status or steps.build.outputs.image",
        )
    hint = f"put text in quotes ('{root}'); {_NAMES_HINT}"
    if root in STATUS_FUNCTIONS:
        hint = f"call it: {root}()"
    elif root in ("true", "false", "null", "none"):
        hint = "write True, False or None (capitalized), or always() to always run"
    raise ExpressionError(f"unknown name `{root}` in `{text.strip()}`", text, hint)


def _call(node: ast.Call, text: str, calls: set[str]) -> ast.Call:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in STATUS_FUNCTIONS:
        raise ExpressionError(
            f"unknown function in `{text.strip()}`",
            text,
            "the only functions are success(), failure() and always()",
        )
    if node.args or node.keywords:
        raise ExpressionError(f"{name}() takes no arguments", text, f"write {name}()")
    calls.add(name)
    return node


def _unsupported(what: str, text: str) -> ExpressionError:
    return ExpressionError(
        f"{what} is not allowed in `{text.strip()}`",
        text,
        "use comparisons, and/or/not, in, arithmetic, literals and success()/failure()/always()",
    )


def _describe(node: ast.AST) -> str:
    names = {"Lambda": "lambda", "NamedExpr": ":=", "JoinedStr": "an f-string"}
    kind = type(node).__name__
    return names.get(kind, f"a {kind} expression")
