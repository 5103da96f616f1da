"""Modals by value, their limits, and submissions parsed back from what Slack would send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from slack_limits import VIEW_BLOCKS, view_problems
from slack_signing import fill_view

from bot.slack import ids, modals, submissions
from orchestrator.errors import ParamError
from orchestrator.interactions import input_field
from orchestrator.protocol import InteractionView, RunView
from orchestrator.workflow.definitions import ParamSpec, Workflow
from orchestrator.workflow.loader import load_workflow
from orchestrator.workflow.params import coerce_params

EXAMPLES = Path(__file__).resolve().parent.parent / "workflows" / "examples"
FIELDS = (
    {"name": "ticket", "type": "text", "required": True, "choices": [], "label": "Change ticket"},
    {"name": "minutes", "type": "number", "required": False, "choices": [], "label": ""},
    {"name": "risk", "type": "choice", "required": True, "choices": ["low", "high"], "label": ""},
    {"name": "notes", "type": "multiline", "required": False, "choices": [], "label": "Notes"},
)


def fits(view: dict[str, Any]) -> dict[str, Any]:
    problems = view_problems(view)
    assert problems == [], problems
    return view


def inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def input_gate(fields: tuple[dict[str, Any], ...] = FIELDS) -> InteractionView:
    """`fields` as the interaction row holds them, read as the orchestrator reads them."""
    return InteractionView("i-0000input000", "r-1", "details", "input", "gate",
                           "Which ticket covers <it>?", "pending",
                           fields=tuple(map(input_field, fields)))  # fmt: skip


@pytest.fixture(scope="module")
def deploy() -> Workflow:
    return load_workflow(EXAMPLES / "deploy.yml")


# -- input gates ---------------------------------------------------------------


def test_input_modal_has_a_typed_input_per_field():
    view = fits(modals.input_modal(input_gate(), context={"channel": "C0OPS"}))
    assert view["callback_id"] == ids.INPUT_VIEW
    assert json.loads(view["private_metadata"]) == {
        "interaction": "i-0000input000", "run": "r-1", "channel": "C0OPS"}  # fmt: skip
    assert "Which ticket covers &lt;it&gt;?" in view["blocks"][0]["text"]["text"]
    blocks = inputs(view)
    assert list(blocks) == ["field.ticket", "field.minutes", "field.risk", "field.notes"]
    ticket, minutes, risk, notes = blocks.values()
    assert (ticket["element"]["type"], ticket["optional"]) == ("plain_text_input", False)
    assert ticket["label"]["text"] == "Change ticket"
    assert minutes["element"] == {"type": "number_input", "is_decimal_allowed": True,
                                  "action_id": "value"}  # fmt: skip
    assert minutes["optional"] is True and minutes["label"]["text"] == "minutes"
    assert risk["element"]["type"] == "static_select"
    assert [o["value"] for o in risk["element"]["options"]] == ["low", "high"]
    assert notes["element"]["multiline"] is True


def test_input_submission_round_trip():
    interaction = input_gate()
    view = modals.input_modal(interaction)
    state = fill_view(view, {"field.ticket": "OPS-7", "field.minutes": "45",
                             "field.risk": "high", "field.notes": None})  # fmt: skip
    values = submissions.parse_input_submission(interaction, state)
    assert values == {"ticket": "OPS-7", "minutes": 45, "risk": "high", "notes": None}
    assert submissions.validate_input_submission(interaction, values) == {}
    state = fill_view(view, {"field.minutes": "2.5", "field.risk": "low"})
    assert submissions.parse_input_submission(interaction, state)["minutes"] == 2.5
    # The CLI's number rule: exact (not through a float), no exponents, 64 bits at most.
    state = fill_view(view, {"field.minutes": "12345678901234567", "field.risk": "low"})
    assert submissions.parse_input_submission(interaction, state)["minutes"] == 12345678901234567
    for typed, why in (("1e3", "write 1000, not 1e3"), ("99999999999999999999", "too large")):
        state = fill_view(view, {"field.minutes": typed, "field.risk": "low"})
        values = submissions.parse_input_submission(interaction, state)
        assert why in submissions.validate_input_submission(interaction, values)["field.minutes"]


def test_input_validation_errors_are_keyed_by_block_id():
    interaction = input_gate()
    bad = {"ticket": "  ", "minutes": "many", "risk": "extreme", "notes": None}
    errors = submissions.validate_input_submission(interaction, bad)
    assert errors == {
        "field.ticket": "This field is required.",
        "field.minutes": "'many' is not a number; give digits, like 3 or 2.5",
        "field.risk": "Choose one of: low, high",
    }
    assert submissions.errors_response(errors) == {"response_action": "errors", "errors": errors}


def test_input_modal_with_120_choices_and_150_fields_stays_within_limits():
    many = {"name": "region", "type": "choice", "required": True,
            "choices": [f"r{i}" for i in range(120)], "label": "L" * 3000}  # fmt: skip
    view = fits(modals.input_modal(input_gate((many,))))
    region = inputs(view)["field.region"]
    assert region["element"]["type"] == "plain_text_input"  # a menu holds 100 at most
    assert region["hint"]["text"].startswith("One of: r0, r1")
    fields = tuple({"name": f"f{i}", "type": "text", "required": False, "choices": [],
                    "label": ""} for i in range(150))  # fmt: skip
    view = fits(modals.input_modal(input_gate(fields)))
    assert len(view["blocks"]) <= VIEW_BLOCKS
    assert "more fields do not fit" in json.dumps(view)


# -- reject with a reason ------------------------------------------------------


def test_reject_reason_modal_and_its_parser():
    view = fits(modals.reject_reason_modal(input_gate()))
    assert view["callback_id"] == ids.REJECT_REASON_VIEW
    assert (view["title"]["text"], view["submit"]["text"]) == ("Reject", "Reject")
    reason = inputs(view)[modals.REASON_BLOCK]
    assert reason["optional"] is False and reason["element"]["multiline"] is True
    state = fill_view(view, {modals.REASON_BLOCK: "  wrong window  "})
    assert submissions.parse_reason(state) == "wrong window"
    assert ids.decode_metadata(view["private_metadata"])["interaction"] == "i-0000input000"


# -- run params ----------------------------------------------------------------


def test_params_modal_has_typed_inputs_with_defaults(deploy):
    view = fits(modals.params_modal(deploy, {}, context={"channel": "C0OPS"}))
    assert view["callback_id"] == ids.PARAMS_VIEW
    assert view["title"]["text"] == "Run deploy" and view["submit"]["text"] == "Run"
    meta = json.loads(view["private_metadata"])
    assert meta == {"workflow": "deploy", "hidden": {}, "channel": "C0OPS"}
    service, version, replicas, dry_run = inputs(view).values()
    assert service["block_id"] == "param.service" and service["optional"] is False
    assert service["element"]["type"] == "static_select"
    assert "initial_option" not in service["element"]
    assert version["element"]["initial_value"] == "v1.0.0"
    assert "^v\\d+\\.\\d+\\.\\d+$" in version["hint"]["text"]
    assert replicas["element"]["type"] == "number_input"
    assert replicas["element"]["initial_value"] == "2"
    assert replicas["element"]["is_decimal_allowed"] is False
    assert dry_run["element"]["type"] == "radio_buttons"
    assert dry_run["element"]["initial_option"]["value"] == "true"


def test_params_modal_prefills_given_values(deploy):
    view = modals.params_modal(deploy, {"service": "web", "replicas": "5", "dry_run": "no"})
    service, _, replicas, dry_run = inputs(view).values()
    assert service["element"]["initial_option"]["value"] == "web"
    assert replicas["element"]["initial_value"] == "5"
    assert dry_run["element"]["initial_option"]["value"] == "false"


def test_params_submission_round_trip_and_validation(deploy):
    view = modals.params_modal(deploy, {})
    state = fill_view(view, {"param.service": "api", "param.version": "v2.0.0",
                             "param.replicas": "3", "param.dry_run": "false"})  # fmt: skip
    values = submissions.parse_params_submission(deploy, state, view["private_metadata"])
    assert values == {"service": "api", "version": "v2.0.0", "replicas": 3, "dry_run": False}
    assert submissions.validate_params_submission(deploy, values) == {}
    assert coerce_params(deploy, values)["replicas"] == 3

    state = fill_view(view, {"param.version": "2.0", "param.replicas": "1.5"})
    values = submissions.parse_params_submission(deploy, state, view["private_metadata"])
    errors = submissions.validate_params_submission(deploy, values)
    assert set(errors) == {"param.service", "param.version", "param.replicas"}
    assert errors["param.service"].startswith("is required")
    assert all(len(message) <= 300 for message in errors.values())


def test_params_modal_lists_errors_from_the_command(deploy):
    with pytest.raises(ParamError) as refused:
        coerce_params(deploy, {"service": "db", "replicas": "x"})
    errors = modals.param_errors(refused.value)
    assert set(errors) == {"service", "replicas"}
    view = fits(modals.params_modal(deploy, {"service": "db", "replicas": "x"}, errors))
    warning = view["blocks"][1]["text"]["text"]
    assert warning.startswith(":warning: *Please fix:*\n• `service`: ")
    service, _, replicas, _ = inputs(view).values()
    assert "initial_option" not in service["element"]  # "db" is not a choice
    assert "initial_value" not in replicas["element"]  # "x" is not a number


def test_params_modal_with_150_params_and_long_names_stays_within_limits():
    params = tuple(ParamSpec(f"p{i:03d}", "string", required=i % 50 == 0, help="h" * 3000)
                   for i in range(150))  # fmt: skip
    workflow = Workflow("w" * 64, "d" * 5000, params, ())
    given = {"p149": "given late", "p001": "x"}
    view = fits(modals.params_modal(workflow, given, {f"p{i}": "e" * 500 for i in range(30)}))
    assert len(view["blocks"]) <= VIEW_BLOCKS
    shown = set(inputs(view))
    assert {"param.p000", "param.p050", "param.p100"} <= shown  # required ones come first
    assert "param.p149" not in shown
    assert json.loads(view["private_metadata"])["hidden"] == {"p149": "given late"}
    state = fill_view(view, {"param.p000": "a", "param.p050": "b", "param.p100": "c"})
    values = submissions.parse_params_submission(workflow, state, view["private_metadata"])
    assert values["p149"] == "given late" and values["p001"] == "x"


def test_private_metadata_over_3000_characters_is_refused(deploy):
    with pytest.raises(ValueError, match="private_metadata"):
        modals.params_modal(deploy, {}, context={"blob": "x" * 3000})


# -- approve with changes ------------------------------------------------------


def test_edit_params_modal_is_prefilled_with_the_run_params(deploy):
    run = RunView("r-9", "deploy", "waiting",
                  {"service": "worker", "version": "v1.4.2", "replicas": 4, "dry_run": False},
                  "U0ALICE")  # fmt: skip
    approval = InteractionView("i-0000approve0", "r-9", "approve", "approval", "gate",
                               "Deploy?", "pending")  # fmt: skip
    view = fits(modals.edit_params_modal(deploy, run, approval))
    assert view["callback_id"] == ids.EDIT_PARAMS_VIEW
    assert view["title"]["text"] == "Approve with changes"
    assert json.loads(view["private_metadata"]) == {
        "interaction": "i-0000approve0",
        "run": "r-9",
        "workflow": "deploy",
        "hidden": {},
    }
    service, version, replicas, dry_run, reason = inputs(view).values()
    assert service["element"]["initial_option"]["value"] == "worker"
    assert version["element"]["initial_value"] == "v1.4.2"
    assert replicas["element"]["initial_value"] == "4"
    assert dry_run["element"]["initial_option"]["value"] == "false"
    assert reason["block_id"] == modals.REASON_BLOCK and reason["optional"] is True
    state = fill_view(view, {"param.service": "worker", "param.version": "v1.4.3",
                             "param.replicas": "4", "param.dry_run": "false",
                             modals.REASON_BLOCK: "hotfix"})  # fmt: skip
    assert submissions.parse_params_submission(deploy, state)["version"] == "v1.4.3"
    assert submissions.parse_reason(state) == "hotfix"


def test_every_modal_title_fits_24_characters(deploy):
    long = Workflow("a-very-long-workflow-name-indeed", "", deploy.params, ())
    assert len(modals.params_modal(long, {})["title"]["text"]) <= 24
