"""Workflow definitions: loading YAML, every rejection with path:line and hint, the examples."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import DefinitionError, OrchestratorError, ParamError
from orchestrator.workflow.definitions import PythonAction, RetryPolicy, ShellAction, Workflow
from orchestrator.workflow.expressions import render_argv, render_text, should_run
from orchestrator.workflow.gate_definitions import (
    ApprovalGate,
    Approvers,
    DecisionGate,
    InputGate,
    Option,
)
from orchestrator.workflow.loader import (
    check_text,
    load_workflow,
    load_workflows,
    parse_duration,
    parse_workflow,
    validate_paths,
)
from orchestrator.workflow.params import coerce_params
from orchestrator.workflow.step_graph import find_cycle, topological_levels

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows" / "examples"

SPEC = """\
name: deploy
description: Deploy a service
max_parallel: 8
params:
  service: {type: choice, choices: [api, web], required: true, help: "which service"}
  version: {type: string, pattern: '^v\\d+\\.\\d+\\.\\d+$', default: v1.0.0}
  replicas: {type: int, default: 2}
  dry_run: {type: bool, default: false}
steps:
  - id: build
    python: opsloop_examples.tasks:build
    retry: {attempts: 3, backoff: 2, on: [error, timeout]}
    timeout: 30s
    idempotent: true
  - id: test
    needs: [build]
    shell: ["pytest", "-q", "--service={{ params.service }}"]
    continue_on_error: true
  - id: analyze
    needs: build
    python: opsloop_examples.tasks:analyze
  - id: approve
    needs: [test, analyze]
    approval:
      message: "Deploy {{ params.service }} {{ params.version }}? tests: {{ steps.test.status }}"
      approvers: {users: [U123], groups: [S456]}
      required: 2
      allow_requester: false
      deadline: 2h
      remind_every: 30m
      on_deadline: reject
    auto_approve_if: "steps.analyze.outputs.confidence >= 0.9"
  - id: pick
    needs: [approve]
    decision:
      message: "Which strategy?"
      options: [canary, {value: blue_green, label: Blue/green}, all_at_once]
      default: canary
      deciders: {users: [U123]}
      deadline: 1h
      on_deadline: default
  - id: details
    input:
      message: "Change ticket"
      fields:
        ticket: {type: text, required: true}
        risk: {type: choice, choices: [low, high]}
        notes: {type: multiline}
        minutes: {type: number}
  - id: rollout
    needs: [pick, details]
    if: "steps.pick.outputs.choice == 'canary' and params.replicas > 1"
    python: opsloop_examples.tasks:rollout
"""


def write(tmp_path: Path, text: str, name: str = "wf.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def minimal(name: str = "w") -> str:
    return f"name: {name}\nsteps:\n  - id: a\n    python: m:f\n"


# ---------------------------------------------------------------- the happy path


def test_spec_example_loads_into_plain_values(tmp_path):
    path = write(tmp_path, SPEC)
    wf = load_workflow(path)
    assert (wf.name, wf.description, wf.max_parallel) == ("deploy", "Deploy a service", 8)
    assert wf.source == str(path)
    assert wf.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    service, version, replicas, dry_run = wf.params
    assert service.choices == ("api", "web") and service.required and service.help
    assert version.default == "v1.0.0" and version.pattern == r"^v\d+\.\d+\.\d+$"
    assert (replicas.type, replicas.default, dry_run.default) == ("int", 2, False)
    build = wf.step("build")
    assert build.action == PythonAction("opsloop_examples.tasks:build")
    assert build.retry == RetryPolicy(3, 2.0, frozenset({"error", "timeout"}))
    assert (build.timeout_s, build.idempotent, build.line) == (30.0, True, 10)
    assert wf.step("test").action == ShellAction(("pytest", "-q", "--service={{ params.service }}"))
    assert wf.step("test").continue_on_error
    assert wf.step("analyze").needs == ("build",)


def test_spec_example_gates(tmp_path):
    wf = load_workflow(write(tmp_path, SPEC))
    approve = wf.step("approve")
    assert approve.action == ApprovalGate(
        message="Deploy {{ params.service }} {{ params.version }}? tests: {{ steps.test.status }}",
        approvers=Approvers(("U123",), ("S456",)),
        required=2,
        allow_requester=False,
        deadline_s=7200.0,
        remind_every_s=1800.0,
        on_deadline="reject",
    )
    assert approve.auto_approve_if == "steps.analyze.outputs.confidence >= 0.9"
    pick = wf.step("pick").action
    assert isinstance(pick, DecisionGate)
    assert pick.options[1] == Option("blue_green", "Blue/green")
    assert pick.options[0] == Option("canary", "canary")
    assert (pick.default, pick.on_deadline, pick.deadline_s) == ("canary", "default", 3600.0)
    details = wf.step("details").action
    assert isinstance(details, InputGate) and details.approvers.is_open
    assert [(f.name, f.type, f.required) for f in details.fields] == [
        ("ticket", "text", True),
        ("risk", "choice", False),
        ("notes", "multiline", False),
        ("minutes", "number", False),
    ]
    assert details.fields[1].choices == ("low", "high") and details.fields[0].label == "ticket"
    assert wf.step("rollout").condition.startswith("steps.pick")


def test_step_kinds_and_graph_helpers(tmp_path):
    wf = load_workflow(write(tmp_path, SPEC))
    kinds = {s.id: (s.kind, s.is_gate) for s in wf.steps}
    assert kinds["build"] == ("python", False) and kinds["test"] == ("shell", False)
    assert kinds["approve"] == ("approval", True) and kinds["details"] == ("input", True)
    assert kinds["pick"] == ("decision", True)
    assert wf.levels() == [
        ["build", "details"],
        ["test", "analyze"],
        ["approve"],
        ["pick"],
        ["rollout"],
    ]
    assert wf.dependents("build") == ("test", "analyze")
    assert wf.dependents("rollout") == ()
    assert wf.upstream("approve") == {"build", "test", "analyze"}
    assert wf.param("replicas").default == 2
    with pytest.raises(KeyError):
        wf.step("nope")


def test_gate_defaults(tmp_path):
    wf = parse_workflow(
        textwrap.dedent("""
        name: g
        steps:
          - id: a
            approval: {message: "ok?"}
          - id: b
            decision: {message: "which?", options: [x, y]}
          - id: c
            decision: {message: "which?", options: [x, y], default: y}
          - id: d
            input: {message: form, fields: {ticket: }}
        """)
    )
    a, b, c, d = (s.action for s in wf.steps)
    assert (a.required, a.allow_requester, a.on_deadline, a.approvers.is_open) == (
        1,
        False,
        "reject",
        True,
    )
    assert (b.allow_requester, b.on_deadline, b.default) == (True, "fail", None)
    assert c.on_deadline == "default"
    assert d.fields[0].type == "text" and d.on_deadline == "fail"


def test_yaml_11_words_stay_text_and_keys_like_on_work():
    wf = parse_workflow(
        textwrap.dedent("""
        name: t
        params:
          v: {type: string, default: 1.10}
          answer: {type: choice, choices: [yes, no], default: no}
          flag: {type: bool, default: yes}
        steps:
          - id: a
            shell: [sleep, 1, "yes"]
            retry: {on: timeout, attempts: 2}
        """)
    )
    assert wf.param("v").default == "1.10"
    assert wf.param("answer").choices == ("yes", "no") and wf.param("answer").default == "no"
    assert wf.param("flag").default is True
    assert wf.step("a").action.argv == ("sleep", "1", "yes")
    assert wf.step("a").retry.on == frozenset({"timeout"})


def test_retry_policy_delay_and_approvers():
    policy = RetryPolicy(attempts=4, backoff_s=2.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert RetryPolicy().delay(1) == 0.0
    assert Approvers().is_open and not Approvers(groups=("S1",)).is_open


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (2.5, 2.5), ("45", 45.0), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0),
     ("1d", 86400.0), ("1h30m", 5400.0), ("250ms", 0.25)],
)  # fmt: skip
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [0, -1, True, "soon", "5 minutes", "", None, "1y", 10**9])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_graph_helpers_on_plain_mappings():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": [], "b": ["a", "zz"]}) is None
    assert topological_levels({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) == [
        ["a"],
        ["b", "c"],
        ["d"],
    ]
    with pytest.raises(ValueError, match="a -> b -> a"):
        topological_levels({"a": ["b"], "b": ["a"]})


def test_load_workflows_recursive_and_skips_hidden(tmp_path):
    write(tmp_path, minimal("one"), "one.yml")
    write(tmp_path, minimal("two"), "team/two.yaml")
    write(tmp_path, minimal("hidden"), ".git/three.yml")
    write(tmp_path, "not yaml: [", "notes.txt")
    found = load_workflows(tmp_path)
    assert sorted(found) == ["one", "two"]
    assert found["two"].source == str(tmp_path / "team" / "two.yaml")


def test_definition_error_text():
    err = DefinitionError("wf.yml", 3, "bad thing", "do this")
    assert str(err) == "wf.yml:3: bad thing (hint: do this)"
    assert isinstance(err, OrchestratorError)
    assert str(DefinitionError("wf.yml", 1, "bad")) == "wf.yml:1: bad"


# ---------------------------------------------------------------- rejections


# Each case: "### message | hint", then the YAML; `# <-` marks the line the error must name.
# A case that starts indented is the body of step `a` in "name: w / steps: / - id: a".
REJECTIONS = r"""
### invalid YAML | indentation
name: w
steps: [  # <-
### must be a mapping | known keys
- just  # <-
- a list
### unknown key `descripton` | did you mean `description`
descripton: x  # <-
name: w
steps:
  - {id: a, python: m:f}
### has no name | add name:
steps:  # <-
  - {id: a, python: m:f}
### has no steps | add steps:
name: w  # <-
### steps must be a non-empty list | - id:
name: w
steps: []  # <-
### steps must be a non-empty list | - id:
name: w
steps: {a: 1}  # <-
### invalid workflow name | lowercase
name: Deploy Service  # <-
steps:
  - {id: a, python: m:f}
### appears twice | keep one
name: w
name: v  # <-
steps:
  - {id: a, python: m:f}
### invalid step id `Build-It` | lowercase
name: w
steps:
  - id: Build-It  # <-
    python: m:f
### invalid step id `if` | steps.<id>
name: w
steps:
  - id: if  # <-
    python: m:f
### a step has no id | add id:
name: w
steps:
  - python: m:f  # <-
### duplicate step id `a` | line 3
name: w
steps:
  - id: a
    python: m:f
  - id: a  # <-
    python: m:f
### unknown key `depends_on` | did you mean `needs`
    depends_on: [b]  # <-
    python: m:f
### needs unknown step `buidl` | did you mean `build`
name: w
steps:
  - id: build
    python: m:f
  - id: b
    needs: [buidl]  # <-
    python: m:f
### steps form a cycle: a -> c -> b -> a | remove one
name: w
steps:
  - id: a
    needs: c  # <-
    python: m:f
  - id: b
    needs: a
    python: m:f
  - id: c
    needs: b
    python: m:f
### cycle: a -> a | remove one
    needs: a  # <-
    python: m:f
### has nothing to do | one of: python, shell
name: w
steps:
  - id: a  # <-
    needs: []
### more than one action: python, shell | own step
    python: m:f
    shell: [ls]  # <-
### invalid expression | expressions look like
    python: m:f
    if: steps.a.status ==  # <-
### reads params.nope, which is not declared | declare it under params
    python: m:f
    if: params.nope  # <-
### reads params.servce | did you mean `service`
name: w
params: {service: }
steps:
  - id: a
    python: m:f
    if: params.servce == 'x'  # <-
### reads unknown step `zz` | known steps
    python: m:f
    if: steps.zz.status == 'x'  # <-
### reads steps.a but does not need it | add a to the needs of `b`
name: w
steps:
  - id: a
    python: m:f
  - id: b
    python: m:f
    if: steps.a.outputs.x  # <-
### reads its own steps.a | later step
    python: m:f
    if: steps.a.outputs.x  # <-
### `message` of step `b` reads steps.a but does not need it | add a to the needs
name: w
steps:
  - id: a
    python: m:f
  - id: b
    approval:
      message: 'ok {{ steps.a.status }}'  # <-
### reads params.who | declare it
    shell: [echo, '{{ params.who }}']  # <-
### unclosed | }}
    shell: [echo, '{{ params.who']  # <-
### attempts must be a whole number from 1 to 100 | attempts: 1
    python: m:f
    retry: {attempts: 0}  # <-
### attempts must be a whole number | attempts: 1
    python: m:f
    retry: {attempts: three}  # <-
### attempts must be a whole number | attempts: 1
    python: m:f
    retry: {attempts: true}  # <-
### backoff must be a duration | 30s
    python: m:f
    retry: {backoff: -2}  # <-
### on must list what to retry on | [error]
    python: m:f
    retry: {on: [crash]}  # <-
### unknown key `tries` | known keys
    python: m:f
    retry: {tries: 2}  # <-
### timeout must be a duration | 1h30m
    python: m:f
    timeout: soon  # <-
### timeout must be a duration | 30s
    python: m:f
    timeout: 0  # <-
### idempotent must be true or false | idempotent: true
    python: m:f
    idempotent: maybe  # <-
### default of param `n` | digits
name: w
params:
  n: {type: int, default: x}  # <-
steps:
  - {id: a, python: m:f}
### does not match the pattern | matches
name: w
params:
  v: {pattern: '^v\d+$', default: x1}  # <-
steps:
  - {id: a, python: m:f}
### not one of the choices | a, b
name: w
params:
  c: {type: choice, choices: [a, b], default: c}  # <-
steps:
  - {id: a, python: m:f}
### is not true or false | yes/no
name: w
params:
  f: {type: bool, default: maybe}  # <-
steps:
  - {id: a, python: m:f}
### has type choice but no choices | add choices
name: w
params:
  c: {type: choice}  # <-
steps:
  - {id: a, python: m:f}
### non-empty list without repeats | choices: [a, b]
name: w
params:
  c: {type: choice, choices: []}  # <-
steps:
  - {id: a, python: m:f}
### choices need type: choice | type: choice
name: w
params:
  c: {type: int, choices: [1, 2]}  # <-
steps:
  - {id: a, python: m:f}
### pattern only applies to string | remove
name: w
params:
  c: {type: int, pattern: '\d+'}  # <-
steps:
  - {id: a, python: m:f}
### not a valid regular expression | fix the pattern
name: w
params:
  c: {pattern: '['}  # <-
steps:
  - {id: a, python: m:f}
### is required and has a default | remove required
name: w
params:
  c: {required: true, default: x}  # <-
steps:
  - {id: a, python: m:f}
### type `integer` is not allowed | did you mean int
name: w
params:
  c: {type: integer}  # <-
steps:
  - {id: a, python: m:f}
### invalid param name `my-param` | params.<name>
name: w
params:
  my-param: {}  # <-
steps:
  - {id: a, python: m:f}
### unknown key `defualt` | did you mean `default`
name: w
params:
  p: {type: int, defualt: 3}  # <-
steps:
  - {id: a, python: m:f}
### options must be a non-empty list | options: [
    decision: {message: m, options: []}  # <-
### options must be unique | own value
    decision: {message: m, options: [x, x]}  # <-
### default `z` is not one of the options | x, y
    decision:
      message: m
      options: [x, y]
      default: z  # <-
### on_deadline: default needs a default | on_deadline: fail
    decision:
      message: m
      options: [x]
      deadline: 1h
      on_deadline: default  # <-
### unknown key `approvers` | did you mean `deciders`
    decision:
      message: m
      options: [x]
      approvers: {users: [U1A]}  # <-
### has no options | options:
    decision:
      message: m  # <-
### on_deadline `default` is not allowed | reject, approve, fail
    approval:
      deadline: 1h
      on_deadline: default  # <-
      message: m
### on_deadline `reject` is not allowed | fail
    input:
      message: m
      fields: {t: }
      deadline: 1h
      on_deadline: reject  # <-
### on_deadline does nothing without a deadline | add deadline
    approval:
      message: m
      on_deadline: approve  # <-
### required must be a whole number from 1 to 50 | required: 1
    approval:
      message: m
      required: 0  # <-
### required is 3 but only 2 approvers | lower required
    approval:
      message: m
      approvers: {users: [U1A, U2B]}
      required: 3  # <-
### @alice in users is not a Slack id | U012AB3CD
    approval:
      message: m
      approvers: {users: ['@alice']}  # <-
### the approval gate has no message | add message
    approval: {required: 1}  # <-
### the approval gate must be a mapping | known keys
    approval: yes  # <-
### needs at least one field | fields:
    input: {message: m, fields: {}}  # <-
### field `risk` has type choice but no choices | add choices
    input:
      message: m
      fields:
        risk: {type: choice}  # <-
### type `date` is not allowed | text, number, choice, multiline
    input:
      message: m
      fields:
        risk: {type: date}  # <-
### invalid field name `my-risk` | outputs
    input:
      message: m
      fields:
        my-risk: {}  # <-
### shell must be a non-empty argv list | without a shell
    shell: 'ls -la'  # <-
### shell must be a non-empty argv list | one item per argument
    shell: []  # <-
### shell must be a list of text items | shell: [a, b]
    shell: [ls, {x: 1}]  # <-
### is not module:function | package.module:function
    python: 'os.system("rm")'  # <-
### is not module:function | tasks:build
    python: orchestrator.tasks  # <-
### retry applies to python and shell steps | deadline
    approval: {message: m}
    retry: {attempts: 2}  # <-
### timeout applies to python and shell steps | deadline
    input: {message: m, fields: {t: }}
    timeout: 5m  # <-
### auto_approve_if only applies to approval gates | use if:
    python: m:f
    auto_approve_if: 'True'  # <-
### auto_approve_if only applies to approval gates | no answer to assume
    decision: {message: m, options: [x], default: x}
    auto_approve_if: 'True'  # <-
### unknown name `true` | True
    python: m:f
    if: 'true'  # <-
### key that is not plain text | merge keys
    python: m:f
    <<: {x: 1}  # <-
### unknown key `color` in a step | known keys
    python: m:f
    color: 'x'  # <-
### max_parallel must be a whole number | max_parallel: 1
name: w
max_parallel: 0  # <-
steps:
  - {id: a, python: m:f}
### description must be text | description:
name: w
description: [a]  # <-
steps:
  - {id: a, python: m:f}
"""


def _cases() -> list[Any]:
    cases = []
    for chunk in REJECTIONS.split("### ")[1:]:
        head, _, text = chunk.partition("\n")
        message, hint = (part.strip() for part in head.split("|"))
        text = text.rstrip() + "\n"
        if text.startswith(" "):
            text = "name: w\nsteps:\n  - id: a\n" + text
        cases.append(pytest.param(text, message, hint, id=message[:40]))
    return cases


@pytest.mark.parametrize(("text", "message", "hint"), _cases())
def test_rejections_name_path_line_and_hint(tmp_path, text, message, hint):
    path = write(tmp_path, text)
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    with pytest.raises(DefinitionError) as caught:
        load_workflow(path)
    err = caught.value
    assert (err.path, err.line) == (str(path), expected_line), str(err)
    assert message in err.message, str(err)
    assert hint in err.hint, str(err)
    assert str(err).startswith(f"{path}:{expected_line}: ")
    assert str(err).endswith(f"(hint: {err.hint})")


def test_tabs_get_their_own_hint(tmp_path):
    path = write(tmp_path, "name: w\n\tsteps: []\n")
    with pytest.raises(DefinitionError) as caught:
        load_workflow(path)
    assert (caught.value.line, caught.value.hint) == (
        2,
        "YAML does not allow tabs for indentation; use spaces",
    )


def test_empty_file_and_unreadable_files(tmp_path):
    empty = write(tmp_path, "", "empty.yml")
    with pytest.raises(DefinitionError, match="is empty") as caught:
        load_workflow(empty)
    assert (caught.value.line, caught.value.hint) == (
        1,
        "a workflow needs at least name: and steps:",
    )
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"name: w\ndescription: caf\xe9\n")
    with pytest.raises(DefinitionError, match="not UTF-8") as caught:
        load_workflow(latin)
    assert caught.value.line == 2 and "UTF-8" in caught.value.hint
    with pytest.raises(DefinitionError, match="cannot read") as caught:
        load_workflow(tmp_path / "missing.yml")
    assert caught.value.hint


def test_duplicate_workflow_names_name_both_files(tmp_path):
    first = write(tmp_path, minimal("same"), "a.yml")
    second = write(tmp_path, "# comment\n" + minimal("same"), "b.yml")
    with pytest.raises(DefinitionError) as caught:
        load_workflows(tmp_path)
    err = caught.value
    assert (err.path, err.line) == (str(second), 2)
    assert str(first) in err.message and "rename" in err.hint
    problems = validate_paths([tmp_path])
    assert [(p.path, p.line) for p in problems] == [(str(second), 2)]


def test_validate_paths_collects_everything(tmp_path):
    good = write(tmp_path, minimal("good"), "good.yml")
    bad = write(
        tmp_path,
        "name: Bad\nsteps:\n  - id: a\n    python: nope\n"
        "  - id: b\n    needs: [zz]\n    shell: x\n",
        "bad.yml",
    )
    broken = write(tmp_path, "name: [", "broken.yml")
    problems = validate_paths([good, tmp_path, tmp_path / "missing", bad])
    lines = [(Path(p.path).name, p.line) for p in problems]
    assert ("bad.yml", 1) in lines and ("bad.yml", 4) in lines and ("bad.yml", 6) in lines
    assert ("bad.yml", 7) in lines and ("missing", 1) in lines
    assert any(p.path == str(broken) for p in problems)
    assert len(lines) == len(set(lines)), "a file given twice is checked once"
    assert all(p.hint for p in problems)
    empty = tmp_path / "empty"
    empty.mkdir()
    [none_found] = validate_paths([empty])
    assert "no *.yml" in none_found.message and none_found.hint


def test_check_text_reports_all_problems_in_line_order():
    workflow, problems = check_text(
        "name: x\nsteps:\n  - id: a\n    python: bad\n    timeout: no\n"
    )
    assert workflow is None
    assert [p.line for p in problems] == [4, 5]
    assert all(p.path == "<string>" for p in problems)


def test_a_param_with_an_error_is_not_also_reported_as_undeclared():
    _, problems = check_text(
        "name: x\nparams:\n  s: {type: string, required: true, default: x}\nsteps:\n"
        "  - id: a\n    if: params.s == 'x'\n    shell: [echo, '{{ params.s }}']\n"
    )
    assert [(p.line, "required and has a default" in p.message) for p in problems] == [(3, True)]


# ---------------------------------------------------------------- the examples


def test_examples_load_and_validate():
    found = load_workflows(EXAMPLES)
    assert {"hello", "deploy"} <= set(found) and 2 <= len(found) <= 4
    assert validate_paths([EXAMPLES]) == []
    deploy = found["deploy"]
    kinds = {s.kind for s in deploy.steps}
    assert {"approval", "decision", "python", "shell"} <= kinds
    assert any(len(level) > 1 for level in deploy.levels()), "deploy has parallel branches"
    assert not any(s.is_gate for s in found["hello"].steps)


def _call(target: str, params: dict, needs: dict) -> dict:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(params=params, needs=needs)


def _run(workflow: Workflow, raw: dict, answers: dict[str, dict]) -> dict[str, dict]:
    """A tiny sequential interpreter: enough to show that an example really runs end to end."""
    params = coerce_params(workflow, raw)
    results: dict[str, dict] = {}
    for level in workflow.levels():
        for step_id in level:
            step = workflow.step(step_id)
            if not should_run(workflow, step_id, params, results):
                results[step_id] = {"status": "skipped", "outputs": {}}
                continue
            context = {"params": params, "steps": results}
            needs = {n: results[n]["outputs"] for n in step.needs}
            if isinstance(step.action, PythonAction):
                outputs = _call(step.action.target, params, needs)
            elif isinstance(step.action, ShellAction):
                argv = render_argv(step.action.argv, context)
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
                outputs = {"exit_code": done.returncode, "stdout": done.stdout}
            else:
                render_text(step.action.message, context)
                outputs = answers[step_id]
            results[step_id] = {"status": "succeeded", "outputs": outputs}
    return results


def test_hello_runs_to_the_end_without_anyone():
    hello = load_workflows(EXAMPLES)["hello"]
    results = _run(hello, {"name": "two words; rm -rf /"}, answers={})
    assert (
        results["echo"]["outputs"]["stdout"]
        == "hello two words; rm -rf / from two words; rm -rf /\n"
    )
    assert results["shout"]["status"] == "skipped"
    assert results["summary"]["outputs"]["with_outputs"] == ["echo"]
    shouted = _run(hello, {"name": "ann", "shout": "yes"}, answers={})
    assert shouted["shout"]["outputs"]["stdout"] == "HELLO ann!\n"


@pytest.mark.parametrize(
    ("choice", "ran", "skipped"),
    [("canary", "canary", "all_at_once"), ("all_at_once", "all_at_once", "canary")],
)
def test_deploy_runs_one_rollout_branch(choice, ran, skipped):  # fmt: skip
    deploy = load_workflows(EXAMPLES)["deploy"]
    answers = {"approve": {"approved": True}, "pick": {"choice": choice}}
    results = _run(deploy, {"service": "web", "version": "v1.2.3"}, answers)
    assert results[ran]["outputs"]["strategy"] == choice
    assert results[skipped]["status"] == "skipped"
    assert results["verify"]["outputs"] == {"healthy": True, "checked": [choice]}
    assert results["report_failure"]["status"] == "skipped"


def test_db_maintenance_runs_with_form_answers():
    wf = load_workflows(EXAMPLES)["db-maintenance"]
    answers = {"details": {"ticket": "OPS-1", "risk": "low", "minutes": 20}, "dba_approval": {}}
    results = _run(wf, {"database": "users"}, answers)
    assert results["vacuum"]["outputs"]["ticket"] == "OPS-1"


# ---------------------------------------------------------------- fuzzing

KEYS = ["name", "description", "max_parallel", "params", "steps", "id", "needs", "if", "retry",
        "timeout", "continue_on_error", "idempotent", "auto_approve_if", "python", "shell",
        "approval", "decision", "input", "message", "approvers", "deciders", "required",
        "options", "default", "fields", "type", "choices", "pattern", "deadline", "on_deadline",
        "users", "groups", "attempts", "backoff", "on", "value", "label", "a", "b"]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.sampled_from(["a", "b", "m:f", "30s", "1h", "U123", "choice", "int", "params.x",
                     "steps.a.status == 'x'", "{{ params.x }}", "{{", "success()", "[",
                     "reject", "default", "2001-13-45", "0x1F", "1:30", "~", "<<"]),
    st.text(max_size=12),
)  # fmt: skip
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=25,
)


def _accepts_or_explains(text: str) -> None:
    try:
        workflow = parse_workflow(text, "fuzz.yml")
    except DefinitionError as err:
        assert err.path == "fuzz.yml" and err.line >= 1 and err.message and err.hint
        return
    assert isinstance(workflow, Workflow)
    try:
        coerce_params(workflow, {"x": "1"})
    except ParamError as err:
        assert err.problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    _accepts_or_explains(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(st.just("w"), SCALARS),
    steps=st.lists(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=5), max_size=4),
    extra=st.dictionaries(st.sampled_from(KEYS), TREES, max_size=3),
)
def test_fuzz_workflow_structures(name, steps, extra):
    document = {**extra, "name": name, "steps": steps}
    _accepts_or_explains(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=200, deadline=None)
@given(
    step=st.fixed_dictionaries(
        {"id": st.sampled_from(["a", "b"])},
        optional={
            "python": st.sampled_from(["m:f", "m", 1]),
            "shell": st.one_of(st.lists(SCALARS, max_size=3), SCALARS),
            "needs": st.one_of(
                st.sampled_from(["a", "b", "c"]), st.lists(st.sampled_from(["a", "b"]))
            ),
            "if": SCALARS,
            "timeout": SCALARS,
            "retry": st.dictionaries(st.sampled_from(["attempts", "backoff", "on"]), SCALARS),
            "approval": st.dictionaries(st.sampled_from(KEYS), TREES, max_size=4),
            "decision": st.fixed_dictionaries({"message": SCALARS, "options": TREES}),
        },
    )
)
def test_fuzz_near_valid_steps(step):
    document = {"name": "w", "params": {"x": {"type": "int", "default": 1}}, "steps": [step]}
    _accepts_or_explains(yaml.safe_dump(document))
