"""`opsloop serve` SIGKILLed right after acking: every acked command and click is done once.

Slack never resends a request it got a 200 for. Before the inbox, the work a command or
click asked for waited in memory after the ack (the follow-up pool holds it while other
requests are answered), and a SIGKILL 0-50 ms after the 200 lost some of it. Here, in
batches, a real bot process gets `/ops run` commands and Approve clicks at once, is
SIGKILLed 0-50 ms after the last 200, and is started again; the last process must have
started exactly one run per acked command and recorded exactly one answer per acked click.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qsl

import sqlalchemy as sa

from bot.slack import ids
from bot.slack.inbox import COMMAND, request_key, run_id_for
from orchestrator import runs
from orchestrator.queries import interaction, open_interactions, run_view
from tests.polling import until
from tests.serve_process import Served, serving, serving_http, stop
from tests.slack_double import Message, SlackDouble
from tests.slack_signing import action_from_blocks, block_actions, post_signed, slash_command

BATCHES, COMMANDS, CLICKS = 4, 5, 5  # 40 acked requests, each batch killed after its acks
STARTER, APPROVER = "U0ALICE", "U0BOB"
GATED = f"""
name: gated
steps:
  - id: approve
    approval:
      message: "Ship it?"
      approvers: {{users: [{APPROVER}]}}
  - id: after
    needs: approve
    shell: ["true"]
    idempotent: true  # a kill while it runs: recovery runs it again instead of asking
"""
FAST = {"OPSLOOP_SLACK_POSTS_PER_SECOND": "50"}  # the gate messages of 20 runs, quickly


def _command(slack: SlackDouble, channel: str, reply: str) -> str:
    return slash_command("run gated", user_id=STARTER, channel_id=channel,
                         response_url=slack.response_url(reply))  # fmt: skip


def _gate(slack: SlackDouble, channel: str) -> Message:
    """The gate message of the one run started in `channel`, once the bot posted it."""

    def found() -> Message | None:
        for parent in slack.messages(channel):
            for reply in slack.thread(channel, parent.ts):
                if "Ship it?" in json.dumps(reply.blocks):
                    return reply
        return None

    return until(found, timeout=60, what=f"the gate message in {channel}")


def _click(slack: SlackDouble, gate: Message, channel: str, reply: str) -> str:
    action = action_from_blocks(gate.blocks or [], ids.APPROVE)
    return block_actions([action], user_id=APPROVER, channel_id=channel, message_ts=gate.ts,
                         response_url=slack.response_url(reply))  # fmt: skip


def _started_runs(served: Served) -> list[str]:
    with served.engine.connect() as conn:
        return list(conn.execute(sa.select(runs.RUNS.c.id)).scalars())


def _answers(served: Served, iid: str) -> int:
    audit = runs.AUDIT
    with served.engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(audit)
            .where(audit.c.interaction_id == iid, audit.c.action == "interaction.answered")
        ).scalar_one())  # fmt: skip


def _replies(slack: SlackDouble, name: str) -> Iterator[str]:
    return (r.get("text", "") for r in slack.responses(name))


def test_requests_acked_just_before_a_sigkill_are_each_done_once_after_restart(
    db_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "gated.yml").write_text(GATED)
    shuffle = random.Random(11)
    commands: dict[str, str] = {}  # run id each acked command must start -> its reply name
    clicks: dict[str, str] = {}  # interaction each acked click approves -> its reply name
    with SlackDouble() as slack, ThreadPoolExecutor(COMMANDS + CLICKS) as users:
        # the gates the kill loop clicks: one run per channel, all waiting
        gate_channels = [f"C0GATE{i:02d}" for i in range(BATCHES * CLICKS)]
        with ExitStack() as stack:
            served, url = stack.enter_context(
                serving_http(slack, db_url, flows, tmp_path / "setup.log", FAST)
            )
            for channel in gate_channels:
                assert post_signed(url, _command(slack, channel, "setup"))[0] == 200
            gates = {channel: _gate(slack, channel) for channel in gate_channels}

        for batch in range(BATCHES):
            log = tmp_path / f"batch{batch}.log"
            with serving_http(slack, db_url, flows, log, FAST) as (served, url):
                bodies = []
                for i in range(COMMANDS):
                    name = f"cmd-{batch}-{i}"
                    body = _command(slack, f"C0RUN{batch}{i}", name)
                    commands[run_id_for(request_key(COMMAND, dict(parse_qsl(body))))] = name
                    bodies.append(body)
                for channel in gate_channels[batch * CLICKS : (batch + 1) * CLICKS]:
                    name = f"click-{channel}"
                    gate = gates[channel]
                    iid = ids.decode_action(action_from_blocks(gate.blocks or [], ids.APPROVE))
                    clicks[iid.interaction_id] = name
                    bodies.append(_click(slack, gate, channel, name))
                shuffle.shuffle(bodies)
                statuses = list(users.map(lambda b: post_signed(url, b)[0], bodies))
                assert statuses == [200] * len(bodies)
                # not a wait for something: the moment of the kill is what varies
                time.sleep(shuffle.uniform(0, 0.05))
                stop(served.process, signal.SIGKILL)

        with serving_http(slack, db_url, flows, tmp_path / "last.log", FAST) as (served, _):
            until(lambda: set(_started_runs(served)) >= set(commands), timeout=60,
                  what="a run for every acked /ops run")  # fmt: skip
            started = _started_runs(served)
            assert len(started) == len(gate_channels) + len(commands), "a command ran twice"
            for iid in clicks:
                until(lambda iid=iid: interaction(served.engine, iid).status == "approved",
                      timeout=60, what=f"the acked approval of {iid}")  # fmt: skip
                assert _answers(served, iid) == 1
                run_id = interaction(served.engine, iid).run_id
                until(lambda r=run_id: run_view(served.engine, r).status == "succeeded",
                      timeout=60, what=f"run {run_id} to go on after its approval")  # fmt: skip
            for name in commands.values():
                until(lambda n=name: any("Started" in t for t in _replies(slack, n)),
                      timeout=30, what=f"the reply to {name}")  # fmt: skip
            for run_id in commands:  # a run's gate opens after its "Started" reply: poll
                until(lambda r=run_id: [i.step_id for i in open_interactions(served.engine, r)]
                      == ["approve"], timeout=30, what=f"the gate of run {run_id}")  # fmt: skip


def test_commands_acked_over_socket_mode_before_a_sigkill_each_start_one_run(
    db_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "gated.yml").write_text(GATED)
    order: list[str] = []  # the run each command must start, in the order pushed
    with SlackDouble() as slack:
        with serving(slack, db_url, flows, tmp_path / "first.log", FAST) as first:
            envelopes = []
            for i in range(20):
                fields = dict(parse_qsl(_command(slack, f"C0SOCK{i}", f"sock-{i}")))
                order.append(run_id_for(request_key(COMMAND, fields)))
                envelopes.append(slack.push_slash_command(fields))
            slack.wait_for_ack(envelopes[-1])
            stop(first.process, signal.SIGKILL)  # no hold in Socket Mode: kill at once
            acked = {run_id for run_id, envelope in zip(order, envelopes, strict=True)
                     if slack.acks(envelope)}  # fmt: skip
        with serving(slack, db_url, flows, tmp_path / "second.log", FAST) as second:
            until(lambda: set(_started_runs(second)) >= acked, timeout=60,
                  what="one run for each acked command")  # fmt: skip
            assert set(_started_runs(second)) <= set(order)  # no run under any other id
