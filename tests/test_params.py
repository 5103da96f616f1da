"""Run parameters: key=value parsing, coercion, defaults, and errors that list every problem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import OrchestratorError, ParamError
from orchestrator.workflow.definitions import ParamSpec
from orchestrator.workflow.loader import parse_workflow
from orchestrator.workflow.params import (
    coerce_params,
    coerce_value,
    missing_required,
    parse_assignments,
)

WORKFLOW = parse_workflow(r"""
name: deploy
params:
  service: {type: choice, choices: [api, web], required: true, help: "which service"}
  version: {type: string, pattern: '^v\d+\.\d+\.\d+$', default: v1.0.0}
  replicas: {type: int, default: 2}
  dry_run: {type: bool, default: false}
  ticket: {type: string, required: true}
  note:
steps:
  - {id: a, python: "m:f"}
""")


def problems(raw: dict) -> dict[str, tuple[str, str]]:
    with pytest.raises(ParamError) as caught:
        coerce_params(WORKFLOW, raw)
    return {p.name: (p.message, p.hint) for p in caught.value.problems}


def test_parse_assignments():
    assert parse_assignments(["service=api", "msg=two words", "eq=a=b", "empty="]) == {
        "service": "api",
        "msg": "two words",
        "eq": "a=b",
        "empty": "",
    }
    assert parse_assignments([]) == {}
    assert parse_assignments([" spaced =x"]) == {"spaced": "x"}


def test_parse_assignments_lists_every_bad_item():
    with pytest.raises(ParamError) as caught:
        parse_assignments(["service", "=value", "ok=1", "ok=2"])
    found = [(p.name, p.message, p.hint) for p in caught.value.problems]
    assert found == [
        ("service", "is not a name=value assignment", "write it as name=value"),
        ("=value", "is not a name=value assignment", "write it as name=value"),
        ("ok", "is given twice", "keep one of ok=... assignments"),
    ]
    assert isinstance(caught.value, OrchestratorError)


def test_coerce_applies_types_and_defaults():
    values = coerce_params(WORKFLOW, {"service": "web", "ticket": "OPS-1", "replicas": "3"})
    assert values == {
        "service": "web",
        "version": "v1.0.0",
        "replicas": 3,
        "dry_run": False,
        "ticket": "OPS-1",
        "note": None,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("Yes", True), ("y", True), ("on", True), ("1", True), (True, True),
     (1, True), ("false", False), ("NO", False), ("n", False), ("off", False), ("0", False),
     (False, False), (0, False), (" yes ", True)],
)  # fmt: skip
def test_bool_words(raw, expected):
    values = coerce_params(WORKFLOW, {"service": "api", "ticket": "t", "dry_run": raw})
    assert values["dry_run"] is expected


@pytest.mark.parametrize(("raw", "expected"), [("3", 3), (" -2 ", -2), ("+7", 7), (5, 5), (4.0, 4)])
def test_int_values(raw, expected):
    values = coerce_params(WORKFLOW, {"service": "api", "ticket": "t", "replicas": raw})
    assert values["replicas"] == expected and type(values["replicas"]) is int


def test_typed_values_from_a_form_are_accepted():
    raw = {"service": "api", "ticket": 1234, "replicas": 4, "dry_run": True, "version": "v2.0.0"}
    values = coerce_params(WORKFLOW, raw)
    assert values["ticket"] == "1234" and values["replicas"] == 4 and values["dry_run"] is True


def test_empty_values_count_as_not_given():
    values = coerce_params(WORKFLOW, {"service": "api", "ticket": "t", "replicas": "", "note": " "})
    assert values["replicas"] == 2 and values["note"] is None
    assert problems({"service": "", "ticket": None})["service"][0] == "is required"


def test_every_problem_is_listed_with_a_hint():
    found = problems(
        {
            "servce": "api",
            "version": "1.0",
            "replicas": "three",
            "dry_run": "maybe",
            "colour": "red",
        }
    )
    assert found["servce"] == ("is not a parameter of this workflow", "did you mean service?")
    assert found["colour"][1] == "deploy takes: service, version, replicas, dry_run, ticket, note"
    assert found["service"] == ("is required", "add service=api (one of api, web); which service")
    assert found["ticket"] == ("is required", "add ticket=...")
    assert "does not match the pattern" in found["version"][0]
    assert "as a whole" in found["version"][1]
    assert found["replicas"] == ("'three' is not a whole number", "give digits only, like 3")
    assert found["dry_run"] == ("'maybe' is not true or false", "use true/false, yes/no or 1/0")
    assert len(found) == 7


def test_choice_suggests_the_closest():
    found = problems({"service": "wbe", "ticket": "t"})
    assert found["service"][0] == "'wbe' is not one of the choices"
    assert found["service"][1] == "did you mean web? choose one of api, web"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("1.5", "whole number"), ("1e3", "whole number"), (True, "whole number"),
     (2.5, "whole number"), ("9" * 40, "whole number"), ([1], "whole number")],
)  # fmt: skip
def test_bad_ints(raw, reason):
    assert reason in problems({"service": "api", "ticket": "t", "replicas": raw})["replicas"][0]


def test_pattern_must_match_the_whole_value():
    spec = ParamSpec(name="tag", pattern=r"v\d+")
    assert coerce_value(spec, "v12") == "v12"
    with pytest.raises(ParamError):
        coerce_value(spec, "v12-rc")
    with pytest.raises(ParamError, match="expected text"):
        coerce_value(spec, ["v1"])


def test_error_text_lists_problems():
    with pytest.raises(ParamError) as caught:
        coerce_params(WORKFLOW, {"ticket": "t"})
    assert str(caught.value) == (
        "1 problem with the parameters:\n"
        "- service: is required (hint: add service=api (one of api, web); which service)"
    )


def test_missing_required():
    assert [s.name for s in missing_required(WORKFLOW, {})] == ["service", "ticket"]
    assert [s.name for s in missing_required(WORKFLOW, {"service": "x", "ticket": ""})] == [
        "ticket"
    ]
    assert missing_required(WORKFLOW, {"service": "api", "ticket": "t"}) == []


def test_workflow_without_params_rejects_any():
    bare = parse_workflow("name: bare\nsteps:\n  - {id: a, python: 'm:f'}\n")
    assert coerce_params(bare, {}) == {}
    with pytest.raises(ParamError) as caught:
        coerce_params(bare, {"x": "1"})
    assert caught.value.problems[0].hint == "bare takes no parameters"


RAW_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["api", "web", "v1.2.3", "yes", "0", "", " ", "3"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)  # fmt: skip
NAMES = st.one_of(
    st.sampled_from(["service", "version", "replicas", "dry_run", "ticket", "note"]),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, RAW_VALUES, max_size=8))
def test_fuzz_params_coerce_or_explain(raw):
    try:
        values = coerce_params(WORKFLOW, raw)
    except ParamError as err:
        assert err.problems and all(p.message and p.hint for p in err.problems)
        return
    assert set(values) == {spec.name for spec in WORKFLOW.params}
    assert isinstance(values["replicas"], int) and isinstance(values["dry_run"], bool)
    assert values["service"] in ("api", "web")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=15), max_size=6))
def test_fuzz_assignments(items):
    try:
        parsed = parse_assignments(items)
    except ParamError as err:
        assert err.problems
        return
    assert all(name and "=" not in name for name in parsed)
