"""The Slack message renderers, tested by value, and against Slack's limits with big inputs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_limits import MESSAGE_BLOCKS, message_problems, text_size
from slack_signing import action_from_blocks

from bot.slack import ids, text
from bot.slack.blocks import (
    STATUS_ICONS,
    render_interaction,
    render_reminder,
    render_run_board,
    render_step_detail,
)
from orchestrator.interactions import input_field, option
from orchestrator.interactions import response as as_response
from orchestrator.protocol import InteractionView, RunView, StepView
from storage.statuses import StepStatus

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STATUSES = tuple(StepStatus)  # an icon for each, so a new status cannot go without one


def step(step_id: str, status: str, seconds: float | None = None, **kw: Any) -> StepView:
    started = T0 if seconds is not None or status == "running" else None
    finished = T0 + timedelta(seconds=seconds) if seconds is not None else None
    return StepView(step_id, "python", status, started_at=started, finished_at=finished, **kw)


def run_view(steps: tuple[StepView, ...] = (), status: str = "running", **kw: Any) -> RunView:
    base: dict[str, Any] = {
        "id": "r-0123456789", "workflow": "deploy", "status": status,
        "params": {"service": "api", "replicas": 2, "dry_run": True},
        "started_by": "U0ALICE", "channel": "C0OPS", "thread_ts": "1700000000.000001",
    }  # fmt: skip
    return RunView(**{**base, **kw}, steps=steps)


def gate(kind: str = "approval", **kw: Any) -> InteractionView:
    """A view; options, fields and responses are given as the interaction row holds them
    and read as the orchestrator reads them (orchestrator.interactions)."""
    base: dict[str, Any] = {
        "id": "i-abcdef012345", "run_id": "r-0123456789", "step_id": "approve", "kind": kind,
        "purpose": "gate", "prompt": "Deploy api v1.2.3?", "status": "pending",
    }  # fmt: skip
    for key, read in (("options", option), ("fields", input_field), ("responses", as_response)):
        if key in kw:
            kw[key] = tuple(map(read, kw[key]))
    return InteractionView(**{**base, **kw})


def fits(message: dict[str, Any]) -> dict[str, Any]:
    problems = message_problems(message)
    assert problems == [], problems
    return message


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def sections(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def actions(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def response(user: str, answer: Any, minutes: int = 5, comment: str | None = None) -> dict:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    return {"user": user, "at": at, "answer": answer, "comment": comment}


# -- the run board -------------------------------------------------------------


def test_board_shows_workflow_params_starter_and_an_icon_per_step_status():
    steps = tuple(step(f"s_{st}", st, 2.5 if st in ("succeeded", "failed") else None)
                  for st in STATUSES)  # fmt: skip
    message = fits(render_run_board(run_view(steps), now=T0 + timedelta(seconds=75)))
    head = message["blocks"][0]
    assert head["type"] == "header"
    assert head["text"]["text"] == ":arrows_counterclockwise: deploy"
    body = "\n".join(sections(message))
    assert "started by <@U0ALICE>" in body
    assert "`service`: api" in body and "`replicas`: 2" in body and "`dry_run`: true" in body
    for st in STATUSES:
        assert f"{STATUS_ICONS[st]} `s_{st}` {st}" in body
    assert "`s_succeeded` succeeded · 2.5s" in body
    assert "`s_running` running · 1m 15s" in body  # elapsed from `now`
    assert message["text"] == "deploy run r-0123456789: running"
    assert "Succeeded" not in body  # no summary while it runs


def test_board_counts_steps_by_status():
    steps = (step("a", "succeeded", 1), step("b", "succeeded", 1), step("c", "pending"))
    message = render_run_board(run_view(steps))
    counts = next(b for b in message["blocks"] if b["type"] == "context")
    assert counts["elements"][0]["text"] == (
        "3 steps · :white_circle: 1 pending · :white_check_mark: 2 succeeded"
    )


def test_finished_board_ends_with_a_summary():
    steps = (step("build", "succeeded", 60), step("test", "succeeded", 125))
    done = fits(render_run_board(run_view(steps, status="succeeded")))
    assert sections(done)[-1] == ":white_check_mark: *Succeeded* in 2m 05s: 2 succeeded."
    failed = run_view((step("build", "failed", 3, error="exit 1"),), status="failed",
                      error="step build failed: <boom> & more")  # fmt: skip
    summary = sections(fits(render_run_board(failed)))[-1]
    assert summary == ":x: *Failed* in 3.0s: step build failed: &lt;boom&gt; &amp; more"


def test_failed_step_line_carries_the_start_of_its_error_and_attempts():
    failed = step("build", "failed", 4, attempts=3, error="Traceback\n  line 1\nValueError: no")
    body = "\n".join(sections(render_run_board(run_view((failed,)))))
    assert ":x: `build` failed · 4.0s · attempt 3 — Traceback line 1 ValueError: no" in body


def test_board_of_200_steps_fits_in_a_message_and_says_how_many_are_hidden():
    statuses = ["succeeded"] * 150 + ["pending"] * 44 + ["running"] * 3 + ["failed"] * 3
    steps = tuple(
        step(f"step_number_{i:03d}_of_a_very_wide_fan_out", st, i if st != "pending" else None,
             error="boom" if st == "failed" else None)
        for i, st in enumerate(statuses)
    )  # fmt: skip
    message = fits(render_run_board(run_view(steps)))
    assert len(message["blocks"]) <= MESSAGE_BLOCKS
    assert all(len(s) <= 3000 for s in sections(message))
    body = "\n".join(sections(message))
    shown = re.findall(r"`step_number_(\d{3})", body)
    more = re.search(r"… and (\d+) more steps: (.*)", body)
    assert more is not None
    assert len(shown) + int(more.group(1)) == 200
    for i in range(194, 200):  # failed and running steps are kept whatever their position
        assert f"step_number_{i:03d}" in body
    assert shown == sorted(shown)  # still in workflow order


def test_board_with_huge_names_and_values_stays_within_limits():
    steps = tuple(step("x" * 300 + str(i), "failed", 1, error="e" * 10_000) for i in range(60))
    run = run_view(steps, workflow="w" * 500, status="failed", error="E" * 10_000,
                   started_by="cli:" + "n" * 400,
                   params={f"p{i}" * 30: "v" * 10_000 for i in range(40)})  # fmt: skip
    message = fits(render_run_board(run))
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    assert text_size(message["blocks"]) <= text.MESSAGE_TEXT_BUDGET


def test_board_escapes_what_people_typed():
    run = run_view(params={"msg": "<!channel> & <@U0BOB> <https://x|y>"}, started_by="cli:<bob>")
    body = all_text(render_run_board(run))
    assert "&lt;!channel&gt; &amp; &lt;@U0BOB&gt; &lt;https://x|y&gt;" in body
    assert "<!channel>" not in body and "<@U0BOB>" not in body
    assert "started by cli:&lt;bob&gt;" in body


# -- gate messages -------------------------------------------------------------


def test_open_approval_has_approve_reject_and_reject_with_reason():
    message = fits(render_interaction(run_view(), gate(allowed_users=("U0BOB",))))
    approve, reject, with_reason = actions(message)
    assert (approve["action_id"], approve["style"], approve["value"]) == (
        ids.APPROVE, "primary", "i-abcdef012345")  # fmt: skip
    assert (reject["action_id"], reject["style"], reject["value"]) == (
        ids.REJECT, "danger", "i-abcdef012345")  # fmt: skip
    assert reject["confirm"]["confirm"]["text"] == "Reject"
    assert reject["confirm"]["style"] == "danger"
    assert with_reason["action_id"] == ids.REJECT_WITH_REASON
    block = next(b for b in message["blocks"] if b["type"] == "actions")
    assert block["block_id"] == "opsloop.gate.i-abcdef012345"
    body = all_text(message)
    assert "Deploy api v1.2.3?" in body and "For <@U0BOB>" in body
    assert message["text"] == "Approval needed: Deploy api v1.2.3?"


def test_approve_with_changes_only_where_allowed():
    plain = render_interaction(run_view(), gate())
    assert ids.APPROVE_WITH_CHANGES not in [a["action_id"] for a in actions(plain)]
    allowed = render_interaction(run_view(), gate(), allow_edit_params=True)
    assert actions(allowed)[-1]["action_id"] == ids.APPROVE_WITH_CHANGES


def test_approval_shows_quorum_progress():
    interaction = gate(required=2, responses=(response("U0BOB", "approve"),))
    body = all_text(fits(render_interaction(run_view(), interaction)))
    assert "*1 of 2* approvals: <@U0BOB>" in body


def test_gate_shows_params_who_may_answer_and_deadline():
    interaction = gate(allowed_users=("U0BOB",), allowed_groups=("S0ONCALL",),
                       deadline=T0 + timedelta(hours=2))  # fmt: skip
    body = all_text(render_interaction(run_view(), interaction))
    assert "For <@U0BOB> and <!subteam^S0ONCALL>" in body
    assert f"Deadline <!date^{int(T0.timestamp()) + 7200}^" in body
    assert "`service`: api" in body
    assert "Anyone here may answer" in all_text(render_interaction(run_view(), gate()))


def test_decision_with_few_options_has_one_button_each_and_clicks_decode():
    options = ({"value": "canary", "label": "Canary first"}, {"value": "all", "label": "All"})
    message = fits(render_interaction(run_view(), gate("decision", options=options)))
    buttons = actions(message)
    assert [b["text"]["text"] for b in buttons] == ["Canary first", "All"]
    assert [b["action_id"] for b in buttons] == ["opsloop.decide.0", "opsloop.decide.1"]
    assert all(ids.DECIDE_PATTERN.match(b["action_id"]) for b in buttons)
    ref = ids.decode_action(action_from_blocks(message["blocks"], "opsloop.decide.1"))
    assert ref == ids.ActionRef(ids.DECIDE, "i-abcdef012345", "all", 1)


def test_decision_with_100_options_gets_a_menu_of_all_of_them():
    options = tuple({"value": f"v{i}", "label": f"Option {i} " + "x" * 100} for i in range(100))
    message = fits(render_interaction(run_view(), gate("decision", options=options)))
    (menu,) = actions(message)
    assert menu["type"] == "static_select" and menu["action_id"] == ids.DECIDE_SELECT
    assert len(menu["options"]) == 100
    assert all(len(o["text"]["text"]) <= 75 for o in menu["options"])
    picked = menu["options"][42]["value"]
    action = action_from_blocks(message["blocks"], ids.DECIDE_SELECT, option_value=picked)
    assert ids.decode_action(action) == ids.ActionRef(ids.DECIDE, "i-abcdef012345", "v42", 42)


def test_decision_with_more_than_100_options_gets_a_menu_that_searches_them():
    options = tuple({"value": f"v{i}", "label": f"Option {i}"} for i in range(120))
    message = fits(render_interaction(run_view(), gate("decision", options=options)))
    (menu,) = actions(message)
    assert menu["type"] == "external_select" and menu["action_id"] == ids.DECIDE_SEARCH
    assert "options" not in menu and "120 options" in menu["placeholder"]["text"]
    # a pick arrives as a static menu's does (bot/slack/suggestions.py gives the values)
    chosen = {"text": {"type": "plain_text", "text": "Option 119"},
              "value": ids.decide_option_value(119, "v119")}  # fmt: skip
    action = {"action_id": ids.DECIDE_SEARCH, "block_id": "opsloop.gate.i-abcdef012345",
              "type": "external_select", "selected_option": chosen}  # fmt: skip
    assert ids.decode_action(action) == ids.ActionRef(ids.DECIDE, "i-abcdef012345", "v119", 119)


@pytest.mark.parametrize("count", [5, 6])
def test_menu_starts_beyond_five_options(count):
    options = tuple({"value": f"v{i}", "label": f"L{i}"} for i in range(count))
    (first, *_) = actions(render_interaction(run_view(), gate("decision", options=options)))
    assert first["type"] == ("button" if count == 5 else "static_select")


def test_long_option_labels_and_values_still_fit():
    options = ({"value": "v" * 3000, "label": "L" * 500}, {"value": "short", "label": "ok"})
    message = fits(render_interaction(run_view(), gate("decision", options=options)))
    long_button = actions(message)[0]
    assert len(long_button["text"]["text"]) == 75
    ref = ids.decode_action(action_from_blocks(message["blocks"], "opsloop.decide.0"))
    assert (ref.choice, ref.index) == (None, 0)  # too long to travel: resolve by index


def test_input_gate_has_a_button_that_opens_the_form():
    fields = ({"name": "ticket", "type": "text", "required": True, "choices": [], "label": ""},)
    (button,) = actions(fits(render_interaction(run_view(), gate("input", fields=fields))))
    assert (button["action_id"], button["value"]) == (ids.OPEN_INPUT, "i-abcdef012345")


def test_recovery_question_says_so():
    options = ({"value": "retry", "label": "Retry the step"}, {"value": "skip", "label": "Skip"})
    interaction = gate("decision", purpose="recovery", options=options)
    assert "*Recovery needed*" in sections(render_interaction(run_view(), interaction))[0]


# -- closed gates --------------------------------------------------------------


def closed(interaction: InteractionView) -> tuple[dict[str, Any], str]:
    message = fits(render_interaction(run_view(), interaction, allow_edit_params=True))
    assert actions(message) == [], "a closed gate has no buttons"
    return message, "\n".join(sections(message))


def test_approved_gate_names_every_approver_and_when():
    responses = (response("U0BOB", "approve", 1), response("U0CAROL", "approve", 7))
    interaction = gate(status="approved", required=2, responses=responses,
                       answer="approve", answered_by="U0CAROL")  # fmt: skip
    message, body = closed(interaction)
    stamp = int((T0 + timedelta(minutes=7)).timestamp())
    assert f":white_check_mark: Approved by <@U0BOB> and <@U0CAROL> · <!date^{stamp}^" in body
    assert "*2 of 2* approvals" in all_text(message)
    assert message["text"].startswith(":white_check_mark: Approved by <@U0BOB> and <@U0CAROL>")


def test_rejected_gate_quotes_the_reason():
    because = response("U0BOB", "reject", comment="not <today>\nsorry")
    interaction = gate(status="rejected", answered_by="U0BOB", answer="reject",
                       responses=(because,))  # fmt: skip
    _, body = closed(interaction)
    assert ":x: Rejected by <@U0BOB> · <!date^" in body
    assert "> not &lt;today&gt;\n> sorry" in body


def test_deadline_rejection_says_opsloop_rejected_it_at_the_deadline():
    interaction = gate(status="rejected", answered_by="opsloop", answer="reject",
                       responses=(response("opsloop", "deadline: reject", 120),))  # fmt: skip
    message, body = closed(interaction)
    assert "rejected by opsloop at deadline" in body.lower()
    assert "Deadline <!date" not in all_text(message)  # the deadline passed


def test_decided_gate_shows_the_label_chosen():
    options = ({"value": "canary", "label": "Canary first"}, {"value": "all", "label": "All"})
    by_person = gate("decision", options=options, status="decided", answer="canary",
                     answered_by="U0BOB", responses=(response("U0BOB", "canary"),))  # fmt: skip
    assert ":ballot_box_with_check: <@U0BOB> chose *Canary first* ·" in closed(by_person)[1]
    by_default = gate("decision", options=options, status="decided", answer="all",
                      answered_by="opsloop",
                      responses=(response("opsloop", "deadline: default:all"),))  # fmt: skip
    assert "*All* chosen by opsloop at deadline" in closed(by_default)[1]


def test_submitted_input_lists_the_answers():
    answer = {"ticket": "OPS-1 <x>", "minutes": 30, "notes": None, "submitted_by": "U0BOB"}
    interaction = gate("input", status="submitted", answer=answer, answered_by="U0BOB",
                       responses=(response("U0BOB", answer),))  # fmt: skip
    _, body = closed(interaction)
    assert ":memo: Submitted by <@U0BOB>" in body
    assert "`ticket`: OPS-1 &lt;x&gt;" in body and "`minutes`: 30" in body
    assert "submitted_by" not in body


def test_expired_and_cancelled_gates():
    expired = gate(status="expired", answered_by="opsloop",
                   responses=(response("opsloop", "deadline: fail"),))  # fmt: skip
    assert ":hourglass: Nobody answered before the deadline" in closed(expired)[1]
    cancelled = gate(status="cancelled", answered_by="U0CAROL")
    assert ":no_entry_sign: Cancelled by <@U0CAROL>" in closed(cancelled)[1]


# -- thread replies ------------------------------------------------------------


def test_step_detail_keeps_the_tail_of_a_10k_error_in_a_code_block():
    error = "".join(f"line {i} <&>\n" for i in range(1000)) + "ValueError: the end"
    detail = fits(render_step_detail(run_view(), step("build", "failed", 9, attempts=2,
                                                       error=error)))  # fmt: skip
    head, err = sections(detail)[:2]
    assert head.startswith(":x: Step `build` *failed* after 9.0s (2 attempts)")
    assert len(err) <= 3000
    assert err.startswith("*Error*\n```\n…") and err.endswith("ValueError: the end\n```")
    assert "line 999 &lt;&amp;&gt;" in err and "line 0 " not in err
    assert detail["text"].startswith("Step build failed: line 0 &lt;&amp;&gt;")


def test_step_detail_shows_output_tails_and_other_outputs():
    outputs = {"exit_code": 2, "stdout": "o" * 9000 + "END", "stderr": "", "image": "x:1"}
    detail = fits(render_step_detail(run_view(), step("sh", "failed", 1, outputs=outputs)))
    body = "\n".join(sections(detail))
    assert "*stdout* (last lines)\n```\n…" in body and "END\n```" in body
    assert "*stderr*" not in body  # empty
    assert "`exit_code`: 2" in body and "`image`: x:1" in body


def test_step_detail_error_with_backticks_cannot_close_the_code_block():
    detail = render_step_detail(run_view(), step("s", "failed", 1, error="a ``` b"))
    assert sections(detail)[1].count("```") == 2


def test_reminder_mentions_who_has_not_answered_yet():
    interaction = gate(allowed_users=("U0BOB", "U0CAROL"), allowed_groups=("S0ONCALL",),
                       required=2, responses=(response("U0BOB", "approve"),),
                       deadline=T0 + timedelta(hours=1))  # fmt: skip
    reminder = fits(render_reminder(run_view(), interaction))
    first = sections(reminder)[0]
    assert first.startswith(":bell: Reminder: <@U0CAROL> and <!subteam^S0ONCALL>: the approval")
    assert "<@U0BOB>:" not in first and "*1 of 2* approvals" in first
    assert "Deadline <!date^" in first


def test_escalation_mentions_the_escalation_group():
    reminder = fits(render_reminder(run_view(), gate(), escalate_to=("S0LEADS", "U0BOSS")))
    first = sections(reminder)[0]
    assert first.startswith(":rotating_light: <!subteam^S0LEADS> and <@U0BOSS>: nobody has")
    assert reminder["text"] == "Escalation: Deploy api v1.2.3?"


# -- everything, big -----------------------------------------------------------


def big_views() -> list[tuple[RunView, InteractionView]]:
    huge = "P" * 10_000 + " <!here> & "
    run = run_view(workflow="w" * 200, params={f"k{i}": "v" * 5000 for i in range(50)},
                   started_by="U0ALICE")  # fmt: skip
    responses = tuple(response(f"U0USER{i}", "approve") for i in range(60))
    return [
        (run, gate(prompt=huge, required=100, responses=responses,
                   allowed_users=tuple(f"U0USER{i}" for i in range(200)),
                   allowed_groups=tuple(f"S0G{i}" for i in range(50)))),
        (run, gate("decision", prompt=huge, options=tuple(
            {"value": "v" * 200 + str(i), "label": "L" * 200} for i in range(120)))),
        (run, gate("input", prompt=huge, status="submitted", answered_by="U0BOB",
                   answer={f"f{i}": "a" * 3000 for i in range(100)},
                   responses=(response("U0BOB", {}, comment="c" * 10_000),))),
        (run, gate(status="rejected", prompt=huge, answered_by="U0BOB",
                   responses=(response("U0BOB", "reject", comment=huge),))),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(4))
def test_big_gates_and_reminders_fit(index):
    run, interaction = big_views()[index]
    for message in (
        render_interaction(run, interaction, allow_edit_params=True),
        render_reminder(run, interaction),
        render_reminder(run, interaction, escalate_to=tuple(f"S0E{i}" for i in range(40))),
    ):
        fits(message)
        assert len(message["text"]) <= 3000
        assert text_size(message["blocks"]) <= text.MESSAGE_TEXT_BUDGET
        assert "<!here>" not in all_text(message)


def test_decision_without_options_has_no_empty_actions_block():
    message = fits(render_interaction(run_view(), gate("decision", options=())))
    assert actions(message) == []
    assert "no options to choose from" in all_text(message)
