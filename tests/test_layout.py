"""The layout is the architecture (docs/architecture.md): these scans keep it so.

Every import counts, wherever it is written: at the top, inside a function or under
`TYPE_CHECKING`, since each of them is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "orchestrator", "storage")
# Who may import whom: the arrows point one way.
ALLOWED = {
    "bot": {"bot", "orchestrator", "storage"},
    "orchestrator": {"orchestrator", "storage"},
    "storage": {"storage"},
}
# The workflow language is pure: it reads files and builds values, nothing more.
# (storage.statuses is plain enums: a step's status is a word of the language too.)
WORKFLOW_ALLOWED = ("orchestrator.workflow", "orchestrator.errors", "storage.statuses")
# (APScheduler's triggers are allowed: cron arithmetic is pure.)
WORKFLOW_FORBIDDEN_LIBS = {"sqlalchemy", "sqlmodel", "langgraph", "slack_sdk", "slack_bolt",
                           "subprocess", "threading"}  # fmt: skip
MAX_LINES = 350


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(name: str, path: Path) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every import in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield module, tuple(a.name for a in node.names), node.lineno


def internal(module: str, taken: tuple[str, ...]) -> list[str]:
    """The project modules an import refers to (`from pkg import mod` names mod)."""
    if module.split(".")[0] not in PACKAGES:
        return []
    found = []
    for item in taken:
        candidate = f"{module}.{item}"
        if (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists() or (
            ROOT / Path(*candidate.split(".")) / "__init__.py"
        ).exists():
            found.append(candidate)
    return found or [module]


def test_arrows_point_one_way():
    wrong = []
    for name, path in modules():
        top = name.split(".")[0]
        for module, _, line in imports(name, path):
            target = module.split(".")[0]
            if target in PACKAGES and target not in ALLOWED[top]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "bot -> orchestrator -> storage, never back:\n" + "\n".join(wrong)


def workflow_may_import(module: str) -> bool:
    """True if the workflow language may import `module` (a dotted name)."""
    top = module.split(".")[0]
    if top in WORKFLOW_FORBIDDEN_LIBS:
        return False
    return top not in PACKAGES or any(
        module == allowed or module.startswith(allowed + ".") for allowed in WORKFLOW_ALLOWED
    )


def test_the_workflow_language_is_pure():
    wrong = []
    for name, path in modules():
        if not name.startswith("orchestrator.workflow"):
            continue
        for module, taken, line in imports(name, path):
            # `from storage import statuses` counts as storage.statuses, not as storage.
            for target in internal(module, taken) or [module]:
                if not workflow_may_import(target):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, (
        "orchestrator/workflow/ imports only itself, errors and storage.statuses:\n"
        + "\n".join(wrong)
    )


def test_the_workflow_language_takes_only_the_statuses_from_storage():
    assert workflow_may_import("storage.statuses")
    assert workflow_may_import("orchestrator.workflow.definitions")
    for module in (
        "storage",
        "storage.models",
        "storage.engine",
        "storage.statuses_extra",
        "orchestrator.runs",
        "orchestrator.workflowish",
        "sqlalchemy.orm",
        "bot",
    ):
        assert not workflow_may_import(module), module


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for name, path in modules():
        for module, taken, line in imports(name, path):
            if module.split(".")[0] not in PACKAGES or module == name:
                continue
            private = [t for t in taken if t.startswith("_") and not t.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}:{line} takes {private} from {module}")
    assert not wrong, "import public names only:\n" + "\n".join(wrong)


def test_every_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {name for name, path in modules() if path.name == "__init__.py"}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert (ROOT / config["package-dir"]["opsloop_examples"] / "tasks.py").exists()


def test_no_import_cycles_inside_a_package():
    graph: dict[str, set[str]] = {}
    for name, path in modules():
        deps = graph.setdefault(name, set())
        for module, taken, _ in imports(name, path):
            for target in internal(module, taken):
                if target != name and target.split(".")[0] == name.split(".")[0]:
                    deps.add(target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles (every import counts, even inside functions):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_is_over_the_size_a_reader_can_hold():
    big = []
    for _, path in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            big.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not big, f"split modules over {MAX_LINES} lines by concept:\n" + "\n".join(big)
