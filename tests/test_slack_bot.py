"""The Slack bot end to end over real HTTP.

The bot is served by waitress on 127.0.0.1 with the real Bolt app, the real
orchestrator and a real database; its SLACK_API_URL points at the Slack Web
API double (tests/slack_double.py); every request to the bot is signed
exactly as Slack signs it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.slack import ids
from bot.slack.modals import field_block_id, param_block_id
from bot.slack.outbox import EDIT_INTERVAL
from orchestrator.workflow.loader import parse_workflow
from tests.bot_harness import Harness, home_opened, post_event, serving
from tests.polling import until
from tests.sample_workflows import GATED
from tests.slack_double import SlackDouble
from tests.slack_signing import (
    fill_view,
    post_signed,
    slash_command,
    view_submission,
)

CHANNEL = "C0OPS"


ROUTED = """
name: routed
steps:
  - id: pick
    decision:
      message: "Which way?"
      options:
        - {value: left, label: "Go left"}
        - {value: right, label: "Go right"}
  - id: left
    needs: pick
    if: "steps.pick.outputs.choice == 'left'"
    shell: ["true"]
  - id: right
    needs: pick
    if: "steps.pick.outputs.choice == 'right'"
    shell: ["true"]
  - id: form
    needs: [left, right]
    if: always()
    input:
      message: "Change ticket?"
      fields:
        ticket: {type: text, required: true, label: "Ticket"}
        minutes: {type: number}
"""

TIMED = """
name: timed
steps:
  - id: quick
    approval:
      message: "Fast?"
      deadline: 1s
      on_deadline: reject
  - id: nagged
    approval:
      message: "Two of us?"
      approvers: {users: [U0BOSS, U0DEPUTY]}
      required: 2
      remind_every: 1s
"""

NIGHTLY = """
name: nightly
schedules:
  - {id: at-three, cron: "0 3 * * *", timezone: Europe/Berlin}
steps:
  - id: work
    shell: ["true"]
"""

CAREFUL = """
name: careful
params:
  replicas: {type: int, default: 2}
steps:
  - id: approve
    approval:
      message: "Scale to {{ params.replicas }}?"
      approvers: {users: [U0BOSS]}
      editable_params: [replicas]
      notify: dm
      escalate: {after: 1s, groups: [S0ONCALL]}
  - id: scale
    needs: approve
    shell: ["echo", "replicas={{ params.replicas }}"]
"""


@pytest.fixture
def harness(db_url: str, tmp_path: Path, slack: SlackDouble) -> Iterator[Harness]:
    flows = {"gated": GATED, "routed": ROUTED, "timed": TIMED, "careful": CAREFUL,
             "nightly": NIGHTLY}  # fmt: skip
    with serving(db_url, tmp_path, slack, flows, CHANNEL) as harness:
        yield harness


def test_run_approve_click_completes_and_the_gate_message_shows_who(harness: Harness) -> None:
    status, _ = harness.command("run gated service=api")
    assert status == 200
    run_id = harness.run_id()
    gate = harness.gate(run_id, "Ship")
    assert "Ship api?" in str(gate.blocks)

    assert harness.click(gate.blocks, ids.APPROVE, "U0BOSS")[0] == 200
    until(lambda: harness.status(run_id) == "succeeded", what="the run to finish")
    edited = until(lambda: (m := harness.slack.message(CHANNEL, gate.ts)).edits
                   and "U0BOSS" in str(m.blocks) and m, what="the gate edit")  # fmt: skip
    assert not [b for b in edited.blocks if b.get("type") == "actions"]  # buttons are gone
    until(lambda: "succeeded" in harness.board(run_id).text, what="the board's final state")


def test_outsiders_and_the_requester_are_refused_and_nothing_changes(harness: Harness) -> None:
    harness.command("run gated service=web", user="U0ALICE")
    run_id = harness.run_id()
    gate = harness.gate(run_id, "Ship")
    for user in ("U0EVE", "U0ALICE"):
        harness.click(gate.blocks, ids.APPROVE, user, reply=f"no-{user}")
        [answer] = until(lambda u=user: harness.slack.responses(f"no-{u}"), what="a refusal")
        assert answer["response_type"] == "ephemeral"
    assert "may not answer" in harness.slack.responses("no-U0EVE")[0]["text"]
    assert "started this run" in harness.slack.responses("no-U0ALICE")[0]["text"]
    assert harness.status(run_id) == "waiting"
    with harness.bot.orch.engine.connect() as conn:
        refused = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'interaction.refused'")
        ).scalar()
    assert refused == 2


def test_two_approvers_racing_give_one_decision(harness: Harness) -> None:
    harness.command("run gated service=api")
    run_id = harness.run_id()
    gate = harness.gate(run_id, "Ship")
    clicks = [threading.Thread(target=harness.click,
                               args=(gate.blocks, action, user, f"race-{user}"))
              for action, user in ((ids.APPROVE, "U0BOSS"), (ids.REJECT, "U0DEPUTY"),
                                   (ids.APPROVE, "U0BOSS"))]  # fmt: skip
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    until(lambda: harness.status(run_id) in ("succeeded", "failed"), what="the run to end")
    losers = [r for u in ("U0BOSS", "U0DEPUTY") for r in harness.slack.responses(f"race-{u}")]
    until(lambda: len([r for u in ("U0BOSS", "U0DEPUTY")
                       for r in harness.slack.responses(f"race-{u}")]) == 2,
          what="two 'already answered' replies")  # fmt: skip
    losers = [r for u in ("U0BOSS", "U0DEPUTY") for r in harness.slack.responses(f"race-{u}")]
    assert all("already" in r["text"] for r in losers)
    with harness.bot.orch.engine.connect() as conn:
        answered = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'interaction.answered'")
        ).scalar()
    assert answered == 1


def test_decision_routes_and_input_modal_submits(harness: Harness) -> None:
    harness.command("run routed")
    run_id = harness.run_id()
    pick = harness.gate(run_id, "Which way?")
    right = next(a for b in pick.blocks if b.get("type") == "actions"
                 for a in b["elements"] if "right" in str(a.get("value")))  # fmt: skip
    harness.click(pick.blocks, right["action_id"], "U0BOB")
    until(lambda: {s.step_id: s.status for s in harness.bot.orch.view(run_id).steps}["form"]
          == "waiting", what="the input gate")  # fmt: skip
    steps = {s.step_id: s.status for s in harness.bot.orch.view(run_id).steps}
    assert steps["left"] == "skipped" and steps["right"] == "succeeded"

    form = harness.gate(run_id, "Change ticket?")
    harness.click(form.blocks, ids.OPEN_INPUT, "U0BOB")
    [opened] = harness.slack.wait_for_calls("views.open")
    view = opened.params["view"]
    empty = fill_view(view, {})
    status, text = post_signed(harness.url, view_submission(view, empty, user_id="U0BOB"))
    assert status == 200 and "response_action" in text and "required" in text  # shown inline
    filled = fill_view(view, {field_block_id("ticket"): "OPS-7", field_block_id("minutes"): "15"})
    assert post_signed(harness.url, view_submission(view, filled, user_id="U0BOB")) == (200, "")
    until(lambda: harness.status(run_id) == "succeeded", what="the run to finish")
    outputs = next(s.outputs for s in harness.bot.orch.view(run_id).steps if s.step_id == "form")
    assert outputs["ticket"] == "OPS-7" and outputs["minutes"] == 15


def test_missing_params_open_a_modal_whose_errors_show_inline(harness: Harness) -> None:
    status, _ = harness.command("run gated")
    assert status == 200
    [opened] = harness.slack.wait_for_calls("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == ids.PARAMS_VIEW
    submitted = fill_view(view, {})
    status, text = post_signed(harness.url, view_submission(view, submitted))
    assert status == 200 and "errors" in text
    filled = fill_view(view, {param_block_id("service"): "web"})
    assert post_signed(harness.url, view_submission(view, filled)) == (200, "")
    run_id = harness.run_id()
    assert harness.bot.orch.view(run_id).params["service"] == "web"


def test_bad_signature_and_stale_timestamp_get_401_and_change_nothing(
    harness: Harness,
) -> None:
    body = slash_command("run gated service=api", channel_id=CHANNEL)
    assert post_signed(harness.url, body, secret="wrong")[0] == 401
    assert post_signed(harness.url, body, timestamp=int(time.time()) - 301)[0] == 401
    with harness.bot.orch.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM workflow_run")).scalar() == 0


def test_unknown_command_answers_with_usage_at_once(harness: Harness) -> None:
    status, text = harness.command("deploy everything")
    assert status == 200 and "not an /ops command" in text and "Usage" in text


def test_a_storm_of_429_and_500_still_delivers_every_message_once(harness: Harness) -> None:
    harness.slack.storm(rate=0.3, seed=7)
    harness.command("run gated service=api")
    run_id = harness.run_id()
    gate = harness.gate(run_id, "Ship")
    harness.click(gate.blocks, ids.APPROVE, "U0DEPUTY")
    until(lambda: harness.status(run_id) == "succeeded", what="the run to finish")
    until(lambda: harness.bot.outbox.counts().keys() == {"sent"}, timeout=60,
          what="the outbox to drain")  # fmt: skip
    harness.slack.calm()
    posts = [c for c in harness.slack.calls("chat.postMessage") if c.ok]
    keys = [(c.params.get("thread_ts"), c.params.get("text")) for c in posts]
    assert len(keys) == len(set(keys))  # nothing posted twice
    assert any(c.faulted for c in harness.slack.calls())  # the storm did hit


def test_deadline_reminder_and_quorum_show_in_the_thread(harness: Harness) -> None:
    harness.command("run timed")
    run_id = harness.run_id()
    quick = harness.gate(run_id, "Fast?")
    # Both steps start together: `nagged` must have asked before time moves, or on a busy
    # machine it asks after the jumps below and its first reminder is still a second away.
    harness.gate(run_id, "Two of us?")
    harness.clock.advance(1)  # the deadline
    until(
        lambda: (
            "deadline" in str(harness.slack.message(CHANNEL, quick.ts).blocks).lower()
            and harness.slack.message(CHANNEL, quick.ts).edits
        ),
        what="the deadline's outcome",
    )
    parent = harness.board(run_id)
    harness.clock.advance(1)  # a reminder period
    until(lambda: any("Reminder" in m.text for m in harness.slack.thread(CHANNEL, parent.ts)),
          what="a reminder in the thread")  # fmt: skip

    nagged = until(lambda: next((m for m in harness.slack.thread(CHANNEL, parent.ts)
                                 if "Two of us?" in str(m.blocks)), None))  # fmt: skip
    harness.click(nagged.blocks, ids.APPROVE, "U0BOSS")
    until(lambda: "1 of 2" in str(harness.slack.message(CHANNEL, nagged.ts).blocks),
          what="quorum progress")  # fmt: skip
    harness.click(nagged.blocks, ids.APPROVE, "U0BOSS", reply="again")
    [again] = until(lambda: harness.slack.responses("again"))
    assert "already approved" in again["text"]
    harness.click(nagged.blocks, ids.APPROVE, "U0DEPUTY")
    until(lambda: harness.status(run_id) == "failed", what="the run to end")  # quick was rejected
    steps = {s.step_id: s.status for s in harness.bot.orch.view(run_id).steps}
    assert steps == {"quick": "failed", "nagged": "succeeded"}


def test_app_home_lists_what_waits_for_the_person(harness: Harness) -> None:
    harness.command("run gated service=api")
    harness.gate(harness.run_id(), "Ship")
    assert post_event(harness.url, home_opened("U0BOSS"))[0] == 200
    home = until(lambda: harness.slack.home("U0BOSS"), what="the home tab")
    assert "Ship api?" in json.dumps(home)


def test_fifty_parallel_steps_coalesce_into_few_board_edits(harness: Harness) -> None:
    steps = "\n".join(f'  - id: s{n}\n    shell: ["true"]' for n in range(50))
    wide = parse_workflow(f"name: wide\nmax_parallel: 50\nsteps:\n{steps}\n")
    harness.bot.orch.workflows["wide"] = wide
    harness.command("run wide")
    run_id = harness.run_id()
    until(lambda: harness.status(run_id) == "succeeded", what="the run to finish")
    board = harness.board(run_id)
    until(lambda: "succeeded" in harness.slack.message(CHANNEL, board.ts).text, what="final board")
    edits = [c.at for c in harness.slack.calls("chat.update") if c.params.get("ts") == board.ts]
    # 100 step changes (running, succeeded) became one edit per EDIT_INTERVAL at most, the
    # changes meanwhile folded into the next: how many depends on how fast this machine ran
    # the steps, the spacing does not (load only widens it). Less 50 ms: the double times
    # calls on the monotonic clock, the outbox on the wall clock.
    gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
    assert edits and min(gaps, default=1.0) >= EDIT_INTERVAL.total_seconds() - 0.05, gaps
    assert "50" in str(harness.slack.message(CHANNEL, board.ts).blocks)


def test_dm_escalation_and_approve_with_changes(harness: Harness) -> None:
    harness.command("run careful")
    run_id = harness.run_id()
    gate = harness.gate(run_id, "Scale to 2?")
    posts = harness.slack.calls
    dm = until(lambda: [c for c in posts("chat.postMessage", ok=True)
                        if c.params.get("channel") == "U0BOSS"], what="the DM")  # fmt: skip
    assert "Scale to 2?" in json.dumps(dm[0].params.get("blocks"))
    parent = harness.board(run_id)
    thread = harness.slack.thread
    harness.clock.advance(1)  # escalate.after
    until(lambda: any("S0ONCALL" in str(m.blocks) for m in thread(CHANNEL, parent.ts)),
          what="the escalation")  # fmt: skip

    # The file is gone (as after an edit and a restart): the form is the run's own version.
    del harness.bot.orch.workflows["careful"]
    harness.click(gate.blocks, ids.APPROVE_WITH_CHANGES, "U0BOSS")
    [opened] = harness.slack.wait_for_calls("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == ids.EDIT_PARAMS_VIEW
    bad = fill_view(view, {param_block_id("replicas"): "many"})
    status, text = post_signed(harness.url, view_submission(view, bad, user_id="U0BOSS"))
    assert status == 200 and "errors" in text
    good = fill_view(view, {param_block_id("replicas"): "5", "reason": "traffic spike"})
    assert post_signed(harness.url, view_submission(view, good, user_id="U0BOSS")) == (200, "")
    until(lambda: harness.status(run_id) == "succeeded", what="the run to finish")
    run = harness.bot.orch.view(run_id)
    assert run.params["replicas"] == 5
    scale = next(s for s in run.steps if s.step_id == "scale")
    assert scale.outputs["stdout"].strip() == "replicas=5"
    with harness.bot.orch.engine.connect() as conn:
        change = conn.execute(
            sa.text("SELECT actor FROM audit_log WHERE action = 'run.params_changed'")
        ).scalar()
    assert change == "U0BOSS"


def test_ops_schedules_lists_next_fires_and_pauses_and_resumes(harness: Harness) -> None:
    harness.command("schedules", reply="list")
    [listed] = until(lambda: harness.slack.responses("list"), what="the schedules list")
    assert listed["response_type"] == "ephemeral"
    text = json.dumps(listed["blocks"])
    assert "nightly/at-three" in text and "0 3 * * *" in text and "Europe/Berlin" in text
    harness.click(listed["blocks"], ids.SCHEDULE_PAUSE, "U0BOSS", reply="paused")
    [paused] = until(lambda: harness.slack.responses("paused"), what="the list after the pause")
    assert paused["replace_original"] is True and "paused by" in json.dumps(paused["blocks"])
    (view,) = [v for v in harness.bot.orch.schedules() if v.id == "nightly/at-three"]
    assert (view.paused, view.paused_by, view.paused_reason) == (
        True,
        "U0BOSS",
        "paused from Slack",
    )
    harness.click(paused["blocks"], ids.SCHEDULE_RESUME, "U0BOSS", reply="resumed")
    until(lambda: harness.slack.responses("resumed"), what="the list after the resume")
    (view,) = [v for v in harness.bot.orch.schedules() if v.id == "nightly/at-three"]
    assert not view.paused and view.next_fire_at is not None
    with harness.bot.orch.engine.connect() as conn:
        actions = conn.execute(sa.text(
            "SELECT action, actor FROM audit_log "
            "WHERE action IN ('schedule.paused', 'schedule.resumed') ORDER BY at"
        )).all()  # fmt: skip
    assert [tuple(a) for a in actions] == [("schedule.paused", "U0BOSS"),
                                           ("schedule.resumed", "U0BOSS")]  # fmt: skip


def test_ops_plan_with_params_is_a_dry_run(harness: Harness) -> None:
    with harness.bot.orch.engine.connect() as conn:
        runs_before = len(conn.execute(sa.text("SELECT id FROM workflow_run")).all())
    harness.command("plan gated service=api", reply="plan")
    [planned] = until(lambda: harness.slack.responses("plan"), what="the plan")
    text = json.dumps(planned)
    assert "a run of gated with service='api' (nothing was started)" in text
    assert "approve" in text and "waits for U0BOSS, U0DEPUTY" in text
    harness.command("plan gated service=db", reply="bad")
    [bad] = until(lambda: harness.slack.responses("bad"), what="the refusal")
    assert "service" in json.dumps(bad) and "api" in json.dumps(bad)  # as `/ops run` says it
    with harness.bot.orch.engine.connect() as conn:
        assert len(conn.execute(sa.text("SELECT id FROM workflow_run")).all()) == runs_before
