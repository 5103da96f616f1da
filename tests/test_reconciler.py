"""The reconciler against the outbox and the Slack double: what Slack lacks is asked for
once, and a message showing an old state is edited; nothing when all is up to date.

The orchestrator here tells no front end (as a CLI process, or a front end that failed):
only the reconciler brings Slack up to date.
"""

from __future__ import annotations

import sqlalchemy as sa
from slack_double import SlackDouble

from bot.slack.delivery import SlackDelivery, delivery_client
from bot.slack.dispatcher import Dispatcher
from bot.slack.frontend import SlackFrontEnd
from bot.slack.outbox import Outbox
from bot.slack.pacing import ChannelPacer
from bot.slack.reconciler import Reconciler
from orchestrator import runs
from orchestrator.queries import interaction, open_interactions, run_view
from storage.engine import write_transaction
from storage.statuses import SYSTEM
from tests.orchestrators import running
from tests.sample_workflows import GATED

CHANNEL = "C0RECON"


def settle(dispatcher: Dispatcher) -> None:
    """Send everything that may go (a gate message goes after its board)."""
    while dispatcher.drain():
        pass


def delivering(engine: sa.Engine, slack: SlackDouble) -> tuple[Outbox, Dispatcher]:
    """An outbox and the dispatcher that sends it to the Slack double, unpaced."""
    outbox = Outbox(engine)
    client = delivery_client(slack.token, slack.api_url)
    send = SlackDelivery(client, lambda r: run_view(engine, r), lambda i: interaction(engine, i))
    return outbox, Dispatcher(outbox, send, pacer=ChannelPacer(per_second=1000.0))


def buttons(slack: SlackDouble, ts: str) -> bool:
    [message] = [m for p in slack.messages(CHANNEL) for m in [p, *slack.thread(CHANNEL, p.ts)]
                 if m.ts == ts]  # fmt: skip
    return any(b.get("type") == "actions" for b in message.blocks or [])


def test_what_slack_lacks_is_asked_once_and_old_states_are_edited(
    engine: sa.Engine, slack: SlackDouble
) -> None:
    outbox, dispatcher = delivering(engine, slack)
    reconciler = Reconciler(engine, SlackFrontEnd(outbox, CHANNEL))
    with running(engine, GATED) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        orch.wait(run_id, 30)
        [gate] = open_interactions(engine, run_id)

        assert reconciler.reconcile(run_id) == 2  # the board and the gate message
        settle(dispatcher)
        [board] = slack.messages(CHANNEL)
        [gate_message] = slack.thread(CHANNEL, board.ts)
        assert buttons(slack, gate_message.ts)
        assert reconciler.reconcile(run_id) == 0  # up to date: nothing asked

        orch.decide(gate.id, "U0BOSS", "approve")
        assert orch.wait(run_id, 30).status == "succeeded"
        assert reconciler.reconcile(run_id) == 2  # the board's and the gate's edits
        settle(dispatcher)
        assert not buttons(slack, gate_message.ts)
        assert "succeeded" in slack.messages(CHANNEL)[0].text
        assert reconciler.reconcile(run_id) == 0
        assert len(slack.calls("chat.postMessage")) == 2


def test_an_escalation_queued_before_the_answer_is_not_posted_after_it(
    engine: sa.Engine, slack: SlackDouble
) -> None:
    """post_nudges checks that the question is open when it queues the escalation, but
    delivery (`_thread_escalation`) does not look again, unlike `_thread_reminder`: an
    escalation still in the outbox when the question is answered (a Slack backlog, rate
    limits, the 24 h lookback at start) is posted for an answered question."""
    outbox, dispatcher = delivering(engine, slack)
    front = SlackFrontEnd(outbox, CHANNEL)
    with running(engine, GATED) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        orch.wait(run_id, 30)
        [gate] = open_interactions(engine, run_id)
        reconciler = Reconciler(engine, front)
        reconciler.reconcile(run_id)
        settle(dispatcher)
        with write_transaction(engine) as conn:
            runs.audit(conn, SYSTEM, "interaction.escalated", now=orch.clock.now(),
                       run_id=run_id, interaction_id=gate.id)  # fmt: skip
        reconciler.changes.start()
        assert reconciler.tick() == 1  # queued: the question is open
        orch.decide(gate.id, "U0BOSS", "approve")  # answered before Slack took it
        assert orch.wait(run_id, 30).status == "succeeded"
        settle(dispatcher)
        [board] = slack.messages(CHANNEL)
        texts = [m.text or "" for m in slack.thread(CHANNEL, board.ts)]
        # GATED names nobody to escalate to, so the escalation renders as "Reminder: ...".
        assert texts == ["Approval needed: Ship api?"], f"nudged after the answer: {texts}"
