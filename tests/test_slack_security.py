"""Access rules through the bot as Slack reaches it: real HTTP, signed requests, the Slack
double for the Web API (user groups included) and a real database.

Refusals leave state unchanged, answer ephemerally with who may, and write one audit
entry each; `/ops audit` shows a run's trail only to people who may see the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.slack import ids
from bot.slack.modals import param_block_id
from orchestrator.group_changes import change_count
from tests.bot_harness import Harness as BotHarness
from tests.bot_harness import post_event, serving
from tests.polling import until
from tests.slack_double import SlackDouble
from tests.slack_signing import (
    fill_view,
    post_signed,
    view_submission,
)

CHANNEL = "C0OPS"
GUARDED = """
name: deploy
access:
  run: {users: [U0LEAD], groups: [S0SRE]}
  cancel: {groups: [S0SRE]}
  retry: {groups: [S0SRE]}
steps:
  - id: build
    shell: ["sh", "-c", "exit 1"]
  - id: ship
    needs: build
    approval:
      message: "Ship it?"
      approvers: {groups: [S0SRE]}
"""
GATED = """
name: gated
steps:
  - id: approve
    approval:
      message: "Go ahead?"
      approvers: {groups: [S0SRE]}
  - id: done
    needs: approve
    shell: ["true"]
"""
HELLO = 'name: hello\nsteps:\n  - id: hi\n    shell: ["true"]\n'
SCALE = """
name: scale
params:
  replicas: {type: int, default: 2}
steps:
  - id: approve
    approval:
      message: "Scale?"
      approvers: {groups: [S0SRE]}
      editable_params: [replicas]
"""
RESTRICTED = """
name: restricted
params:
  service: {type: string, required: true}
access:
  run: {users: [U0LEAD]}
  channels: [C0DEPLOY]
steps:
  - id: go
    shell: ["true"]
"""
FLOWS = {"deploy": GUARDED, "gated": GATED, "hello": HELLO, "scale": SCALE,
         "restricted": RESTRICTED}  # fmt: skip


class Harness(BotHarness):
    def refusals(self, actor: str) -> list[str]:
        rows = self.sql("SELECT detail FROM audit_log WHERE action = 'access.refused' "
                        "AND actor = :actor ORDER BY id", actor=actor)  # fmt: skip
        return [str(r[0]) for r in rows]


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    with SlackDouble() as slack:
        slack.set_group("S0SRE", ["U0SRE", "U0ANNA"])
        with serving(db_url, tmp_path, slack, FLOWS, CHANNEL, admins="U0ROOT",
                     rate_limit="20/min") as h:  # fmt: skip
            yield Harness(h.url, h.bot, h.slack, h.clock, h.channel)


def test_audit_shows_a_runs_trail_only_to_people_who_may_see_the_run(harness: Harness) -> None:
    harness.command("run gated", "U0ALICE", "start")
    run_id = until(lambda: harness.runs(), what="a run")[0]
    gate = harness.gate(run_id, "Go ahead?")
    harness.click(gate.blocks, ids.APPROVE, "U0SRE", "approve")
    until(lambda: harness.bot.orch.view(run_id).status == "succeeded", what="the run to end")

    # In the run's channel, anyone sees it; elsewhere, the people its gate asked do.
    for user, where in (("U0BOB", CHANNEL), ("U0ANNA", "D0ANNA"), ("U0ROOT", "D0ROOT")):
        harness.command(f"audit {run_id}", user, f"audit-{user}", channel=where)
        shown = str(harness.reply(f"audit-{user}")["blocks"])
        assert "run.started" in shown and "<@U0ALICE>" in shown
        assert "interaction.answered" in shown and "<@U0SRE>" in shown and "approve" in shown

    # Anyone else, elsewhere, is refused, with the same words for a run that does not exist.
    harness.command(f"audit {run_id}", "U0EVE", "audit-eve", channel="D0EVE")
    harness.command("audit r-nosuchrun", "U0EVE", "audit-none", channel="D0EVE")
    refused, unknown = harness.reply("audit-eve")["text"], harness.reply("audit-none")["text"]
    assert "that you may see" in refused and "run.started" not in refused
    assert unknown == refused.replace(run_id, "r-nosuchrun")
    assert len(harness.refusals("U0EVE")) == 2


def test_the_events_url_answers_slacks_challenge_only_when_signed(harness: Harness) -> None:
    challenge = json.dumps({"type": "url_verification", "token": "unused", "challenge": "c0ffee"})
    status, text = post_signed(harness.url, challenge, headers={"Content-Type": "application/json"})
    assert status == 200 and "c0ffee" in text
    forged = post_signed(harness.url, challenge, secret="guessed",
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert forged[0] == 401 and "c0ffee" not in forged[1]


def test_a_member_removed_from_a_group_is_refused_at_once(harness: Harness) -> None:
    for n in range(2):
        harness.command("run gated", "U0ALICE", f"start-{n}")
        until(lambda n=n: len(harness.runs()) > n, what="a run")
    first, second = harness.runs()
    harness.click(harness.gate(first, "Go ahead?").blocks, ids.APPROVE, "U0ANNA", "member")
    until(lambda: harness.bot.orch.view(first).status == "succeeded", what="Anna's approval")

    # Anna leaves S0SRE. The bot asked Slack a moment ago and would trust that answer for
    # a minute (the bot's clock does not move here), but Slack says the group changed.
    harness.slack.set_group("S0SRE", ["U0SRE"])
    changed = {"type": "subteam_members_changed", "subteam_id": "S0SRE", "team_id": "T0TEAM",
               "date_previous_update": 1, "date_update": 2, "added_users": [],
               "added_users_count": "0", "removed_users": ["U0ANNA"],
               "removed_users_count": "1"}  # fmt: skip
    assert post_event(harness.url, changed)[0] == 200
    gate = harness.gate(second, "Go ahead?")
    harness.click(gate.blocks, ids.APPROVE, "U0ANNA", "removed")
    assert "may not answer" in harness.reply("removed")["text"]
    assert harness.bot.orch.view(second).status == "waiting"
    # Counted for the other replicas, and audited with who left.
    until(lambda: change_count(harness.bot.orch.engine, "S0SRE") == 1, what="the change count")
    [(detail,)] = harness.sql("SELECT detail FROM audit_log WHERE action = 'group.changed'")
    assert "U0ANNA" in str(detail)

    # Back in the group (subteam_updated carries the group whole): she may answer again.
    harness.slack.set_group("S0SRE", ["U0SRE", "U0ANNA"])
    updated = {"type": "subteam_updated", "subteam": {"id": "S0SRE", "team_id": "T0TEAM",
               "handle": "sre", "users": ["U0SRE", "U0ANNA"], "user_count": 2}}  # fmt: skip
    assert post_event(harness.url, updated)[0] == 200
    harness.click(gate.blocks, ids.APPROVE, "U0ANNA", "back")
    until(lambda: harness.bot.orch.view(second).status == "succeeded", what="her approval")


def test_a_refused_start_says_who_may_starts_nothing_and_is_audited(harness: Harness) -> None:
    assert harness.command("run deploy", "U0EVE", "eve")[0] == 200
    text = harness.reply("eve")["text"]
    assert "may not run deploy" in text and "<@U0LEAD>" in text and "S0SRE" in text
    assert harness.runs() == []
    [refusal] = harness.refusals("U0EVE")
    assert "may not run deploy" in refusal
    # /ops list shows only what the person may run.
    harness.command("list", "U0EVE", "eve-list")
    listed = harness.reply("eve-list")["text"]
    assert "`gated`" in listed and "`deploy`" not in listed
    harness.command("run deploy", "U0ANNA", "anna")  # in S0SRE
    assert "Started `deploy`" in harness.reply("anna")["text"]
    [(detail,)] = harness.sql("SELECT detail FROM audit_log WHERE action = 'run.started'")
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert (detail["front_end"], detail["channel"]) == ("slack", CHANNEL)  # who, from where


def test_the_requester_cannot_approve_their_own_run_and_admins_do_not_bypass(
    harness: Harness,
) -> None:
    harness.command("run gated", "U0SRE", "start")  # U0SRE is in S0SRE, which the gate asks
    run_id = until(lambda: harness.runs(), what="a run")[0]
    gate = harness.gate(run_id, "Go ahead?")
    harness.click(gate.blocks, ids.APPROVE, "U0SRE", "own")
    harness.click(gate.blocks, ids.APPROVE, "U0ROOT", "admin")
    assert "started this run" in harness.reply("own")["text"]
    assert "may not answer" in harness.reply("admin")["text"]
    assert harness.bot.orch.view(run_id).status == "waiting"
    refused = harness.sql("SELECT actor FROM audit_log WHERE action = 'interaction.refused' "
                          "ORDER BY id")  # fmt: skip
    assert sorted(refused) == [("U0ROOT",), ("U0SRE",)]
    assert harness.sql("SELECT count(*) FROM audit_log WHERE action = 'interaction.answered'") \
        == [(0,)]  # fmt: skip


def test_outsiders_cannot_cancel_or_retry_and_nothing_changes(harness: Harness) -> None:
    harness.command("run gated", "U0ALICE", "start-gated")
    harness.command("run deploy", "U0LEAD", "start-deploy")
    until(lambda: len(harness.runs()) == 2, what="two runs")
    by_workflow = dict(harness.sql("SELECT workflow, id FROM workflow_run"))
    gated, deploy = by_workflow["gated"], by_workflow["deploy"]
    until(lambda: harness.bot.orch.view(deploy).status == "failed", what="deploy's build to fail")
    harness.gate(gated, "Go ahead?")

    harness.command(f"cancel {gated}", "U0EVE", "cancel")
    harness.command(f"retry {deploy}", "U0EVE", "retry")
    harness.command(f"cancel {deploy}", "U0EVE", "cancel-deploy")
    assert "may not cancel" in harness.reply("cancel")["text"]
    assert "may not retry" in harness.reply("retry")["text"]
    assert "may not cancel" in harness.reply("cancel-deploy")["text"]
    assert harness.bot.orch.view(gated).status == "waiting"
    assert harness.bot.orch.view(deploy).status == "failed"
    assert len(harness.refusals("U0EVE")) == 3
    # The workflow's access.retry group may retry it; the requester may cancel theirs.
    harness.command(f"retry {deploy}", "U0ANNA", "retry-anna")
    assert "Retrying" in harness.reply("retry-anna")["text"]
    harness.command(f"cancel {gated}", "U0ALICE", "cancel-alice")
    assert "Cancelled" in harness.reply("cancel-alice")["text"]
    assert harness.bot.orch.view(gated).status == "cancelled"


def test_a_burst_of_starts_is_cut_at_the_rate_limit_with_when_to_retry(harness: Harness) -> None:
    with ThreadPoolExecutor(10) as burst:  # 30 `/ops run` at once, by one person
        statuses = list(burst.map(lambda n: harness.command("run hello", "U0BURST", f"b{n}")[0],
                                  range(30)))  # fmt: skip
    assert statuses == [200] * 30
    answers = [harness.reply(f"b{n}")["text"] for n in range(30)]
    refused = [a for a in answers if "slow down" in a]
    assert len(refused) == 10 and len(harness.runs()) == 20
    assert all("retry in 60 s" in a for a in refused)
    assert len(harness.refusals("U0BURST")) == 10
    harness.command("run hello", "U0OTHER", "other")  # the limit is per person
    assert "Started" in harness.reply("other")["text"]
    harness.clock.advance(61)
    harness.command("run hello", "U0BURST", "later")
    assert "Started" in harness.reply("later")["text"]


def test_status_and_runs_show_a_run_only_to_who_may_see_it_and_leak_nothing(
    harness: Harness,
) -> None:
    harness.command("run gated", "U0ALICE", "start")
    run_id = until(lambda: harness.runs(), what="a run")[0]
    harness.gate(run_id, "Go ahead?")
    harness.command(f"status {run_id}", "U0EVE", "eve", channel="D0EVE")
    harness.command("status r-nosuchrun", "U0EVE", "none", channel="D0EVE")
    refused, unknown = harness.reply("eve")["text"], harness.reply("none")["text"]
    assert "that you may see" in refused and "gated" not in refused
    assert unknown == refused.replace(run_id, "r-nosuchrun")  # existence is not told
    assert len(harness.refusals("U0EVE")) == 2
    long_id = "r-" + "x" * 300  # wider than audit_log.run_id: still a refusal, not a crash
    harness.command(f"status {long_id}", "U0EVE", "long", channel="D0EVE")
    assert harness.reply("long")["text"] == refused.replace(run_id, long_id)
    assert len(harness.refusals("U0EVE")) == 3
    harness.command("runs", "U0EVE", "eve-runs", channel="D0EVE")
    assert harness.reply("eve-runs")["text"] == "No runs you may see."
    harness.command("runs", "U0ANNA", "anna-runs", channel="D0ANNA")  # the gate asks her group
    assert run_id in harness.reply("anna-runs")["text"]
    harness.command(f"status {run_id}", "U0ANNA", "anna", channel="D0ANNA")
    assert "gated" in str(harness.reply("anna"))


def test_a_decided_gate_says_who_when_why_and_the_param_diff_with_no_buttons(
    harness: Harness,
) -> None:
    harness.command("run scale", "U0ALICE", "start")
    run_id = until(lambda: harness.runs(), what="a run")[0]
    gate = harness.gate(run_id, "Scale?")
    harness.click(gate.blocks, ids.APPROVE_WITH_CHANGES, "U0ANNA", "edit")
    [opened] = harness.slack.wait_for_calls("views.open")
    view = opened.params["view"]
    filled = fill_view(view, {param_block_id("replicas"): "5", "reason": "traffic spike"})
    assert post_signed(harness.url, view_submission(view, filled, user_id="U0ANNA")) == (200, "")
    until(lambda: harness.bot.orch.view(run_id).status == "succeeded", what="the run to end")

    def decided() -> Any:
        shown = harness.slack.message(CHANNEL, gate.ts)
        return shown if "Approved" in str(shown.blocks) else None

    blocks = str(until(decided, what="the gate message edited").blocks)
    assert "<@U0ANNA>" in blocks and "<!date^" in blocks  # who and when
    assert "traffic spike" in blocks  # why
    assert "`replicas` 2 → 5" in blocks  # what changed
    assert "'actions'" not in blocks  # no live buttons


def test_a_refused_start_is_refused_before_a_params_form_opens(harness: Harness) -> None:
    harness.command("run restricted", "U0EVE", "eve", channel="C0DEPLOY")
    harness.command("run restricted", "U0LEAD", "elsewhere")  # from C0OPS
    assert "<@U0EVE> may not run restricted" in harness.reply("eve")["text"]
    assert "only be run from C0DEPLOY" in harness.reply("elsewhere")["text"]
    assert harness.slack.calls("views.open") == [] and harness.runs() == []
    assert len(harness.refusals("U0EVE")) == 1 and len(harness.refusals("U0LEAD")) == 1
    harness.command("run restricted", "U0LEAD", "lead", channel="C0DEPLOY")
    [opened] = harness.slack.wait_for_calls("views.open")  # the form, for who may
    assert opened.params["view"]["callback_id"] == ids.PARAMS_VIEW
