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
from orchestrator.queries import interaction, open_interactions, run_view
from tests.orchestrators import running
from tests.sample_workflows import GATED

CHANNEL = "C0RECON"


def settle(dispatcher: Dispatcher) -> None:
    """Send everything that may go (a gate message goes after its board)."""
    while dispatcher.drain():
        pass


def buttons(slack: SlackDouble, ts: str) -> bool:
    [message] = [m for p in slack.messages(CHANNEL) for m in [p, *slack.thread(CHANNEL, p.ts)]
                 if m.ts == ts]  # fmt: skip
    return any(b.get("type") == "actions" for b in message.blocks or [])


def test_what_slack_lacks_is_asked_once_and_old_states_are_edited(
    engine: sa.Engine, slack: SlackDouble
) -> None:
    outbox = Outbox(engine)
    reconciler = Reconciler(engine, SlackFrontEnd(outbox, CHANNEL))
    client = delivery_client(slack.token, slack.api_url)
    send = SlackDelivery(client, lambda r: run_view(engine, r), lambda i: interaction(engine, i))
    dispatcher = Dispatcher(outbox, send, pacer=ChannelPacer(per_second=1000.0))
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
