"""Random small workflows, run for real: a clear error, or a run where every step ends sensibly.

Hypothesis writes workflow YAML (random DAGs; `if` conditions from a small grammar of
success()/failure()/always(), params and upstream steps, some of which only fail
when evaluated; continue_on_error; tasks that succeed, fail or crash) and run params
(some of them bad). Each example either stops with a clear error before anything runs
(DefinitionError naming the line, ParamError listing the problems), or runs on a real
SQLite file until the run finishes, and then every step is in a terminal status that
the semantics of `needs` and `if` predict.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.engine import Orchestrator
from orchestrator.errors import DefinitionError, ExpressionError, ParamError
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.expressions import compile_condition, should_run
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine
from storage.schema import setup

TASKS = {
    "engine_tasks:ok": ("succeeded", None),
    "engine_tasks:boom": ("failed", "boom"),
    "engine_tasks:crash": ("failed", "RuntimeError: unexpected"),
}
OUTPUTS = {"n": 1, "word": "x"}  # what engine_tasks:ok returns
PARAMS = {
    "n": {"type": "int", "default": 1},
    "flag": {"type": "bool", "default": False},
    "word": {"type": "string", "default": "x"},
}
PARAM_ATOMS = [
    "params.n > 1",
    "params.flag",
    "params.word == 'x'",
    "params.n * 2 >= 2",
    "params.word > params.n",  # str > int: fails only when evaluated
    "params.n / (params.n - 1) > 0",  # divides by zero when n is 1
]
STATUS_ATOMS = ["success()", "failure()", "always()"]
UNDECLARED = "params.nope"  # the loader must refuse it
TERMINAL = {"succeeded", "failed", "skipped"}


def _step_atoms(step_id: str) -> list[str]:
    return [
        f"steps.{step_id}.status == 'succeeded'",
        f"steps.{step_id}.outcome == 'failed'",
        f"steps.{step_id}.outputs.n == 1",
        f"steps.{step_id}.outputs.word > 1",  # str > int when the step succeeded
    ]


def _conditions(upstream: list[str], others: list[str], broken: bool) -> st.SearchStrategy[str]:
    atoms = STATUS_ATOMS + PARAM_ATOMS + [a for s in upstream for a in _step_atoms(s)]
    if broken:  # an undeclared param or a step that is not upstream: the loader must refuse
        atoms += [UNDECLARED, *(f"steps.{s}.status == 'failed'" for s in others[:1])]
    return st.recursive(
        st.sampled_from(atoms),
        lambda inner: st.one_of(
            st.builds("not ({})".format, inner),
            st.builds("({}) and ({})".format, inner, inner),
            st.builds("({}) or ({})".format, inner, inner),
        ),
        max_leaves=4,
    )


@st.composite
def _workflows(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 6))
    broken = draw(st.integers(0, 9)) == 0
    steps: list[dict[str, Any]] = []
    upstream: dict[str, set[str]] = {}
    for i in range(count):
        step_id = f"s{i}"
        earlier = [s["id"] for s in steps]
        needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if i else []
        upstream[step_id] = set(needs).union(*(upstream[n] for n in needs))
        step: dict[str, Any] = {"id": step_id, "python": draw(st.sampled_from(sorted(TASKS)))}
        if needs:
            step["needs"] = needs
        if draw(st.booleans()):
            ups = sorted(upstream[step_id])
            step["if"] = draw(_conditions(ups, [s for s in earlier if s not in ups], broken))
        if draw(st.integers(0, 3)) == 0:
            step["continue_on_error"] = True
        steps.append(step)
    document: dict[str, Any] = {"name": "fuzz", "params": PARAMS, "steps": steps}
    if draw(st.integers(0, 3)) == 0:
        document["max_parallel"] = draw(st.integers(1, 2))
    return yaml.safe_dump(document, sort_keys=False)


_GOOD_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "n": st.one_of(st.integers(-2, 3), st.just("2")),
        "flag": st.sampled_from([True, False, "yes"]),
        "word": st.sampled_from(["x", "y", ""]),
    },
)
_BAD_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "n": st.sampled_from(["abc", "1.5"]),
        "flag": st.just("maybe"),
        "unknown": st.just("1"),
    },
)
_PARAM_VALUES = st.integers(0, 7).flatmap(lambda k: _BAD_PARAMS if k == 0 else _GOOD_PARAMS)


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One SQLite file for every example; each run has its own id."""
    engine = create_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}")
    setup(engine)
    yield engine
    engine.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_workflows(), params=_PARAM_VALUES)
def test_random_workflows_error_clearly_or_finish_every_step(
    fuzz_engine: sa.Engine, text: str, params: dict[str, Any]
) -> None:
    try:
        workflow = parse_workflow(text)
    except DefinitionError as err:
        assert str(err).startswith("<string>:")  # names the line
        return
    # Not started: start() would take over runs of other examples (each has its own ids).
    orch = Orchestrator(fuzz_engine, {workflow.name: workflow}, max_workers=4)
    try:
        try:
            run_id = orch.start_run(workflow.name, params, started_by="UFUZZ")
        except ParamError as err:
            assert err.problems and all(p.message and p.hint for p in err.problems)
            return
        run = orch.wait(run_id, timeout=30)
    finally:
        orch.close()
    assert run.status in ("succeeded", "failed"), run
    actual = {s.step_id: (s.status, s.error, s.outputs) for s in run.steps}
    assert {status for status, _, _ in actual.values()} <= TERMINAL, actual
    assert actual == _predict(workflow, run.params)
    _check_rules(workflow, actual)
    failed = [s for s in workflow.steps if actual[s.id][0] == "failed" and not s.continue_on_error]
    assert run.status == ("failed" if failed else "succeeded")


def _predict(workflow: Workflow, params: dict[str, Any]) -> dict[str, tuple]:
    """Each step's (status, error, outputs), deciding steps in dependency order."""
    results: dict[str, dict[str, Any]] = {}
    predicted: dict[str, tuple] = {}
    for level in workflow.levels():
        for step_id in level:
            step = workflow.step(step_id)
            try:
                runs = should_run(workflow, step_id, params, results)
            except ExpressionError as err:
                predicted[step_id] = ("failed", str(err), None)
            else:
                if not runs:
                    predicted[step_id] = ("skipped", None, None)
                else:
                    status, error = TASKS[step.action.target]  # type: ignore[union-attr]
                    outputs = dict(OUTPUTS) if status == "succeeded" else None
                    predicted[step_id] = (status, error, outputs)
            status, _, outputs = predicted[step_id]
            results[step_id] = {"status": status, "outputs": outputs}
    return predicted


def _check_rules(workflow: Workflow, actual: dict[str, tuple]) -> None:
    """The rules people rely on, stated without the expression evaluator."""
    for step in workflow.steps:
        status = actual[step.id][0]
        uses_status = step.condition and compile_condition(step.condition).uses_status
        blocked = [
            n
            for n in step.needs
            if actual[n][0] == "skipped"
            or (actual[n][0] == "failed" and not workflow.step(n).continue_on_error)
        ]
        if blocked and not uses_status:
            assert status == "skipped", (step.id, blocked)
        if step.condition == "always()":
            assert status != "skipped", step.id
        if status == "failed" and actual[step.id][1].startswith("could not evaluate"):
            assert step.condition is not None
