"""The Slack front end of the orchestrator's protocol: every event becomes an outbox row.

Nothing here calls Slack. Events arrive on worker threads right after the
change is committed; turning them into outbox rows keeps them fast and makes
every message survive a Slack outage or a restart (see `bot.slack.outbox`).

Keys, one message each:
    board:<run>            the run's parent message (posted once)
    board-edit:<run>       edits of it, coalesced
    gate:<interaction>     the gate message in the run's thread
    gate-edit:<interaction> edits of it (quorum progress, the outcome)
    step:<run>:<step>:<n>  a failed step's details in the thread
    remind:<interaction>:<n>  a reminder: n is its audit entry's id (bot/slack/nudges.py)
    escalate:<interaction>  the escalation (once per question)
    summary:<run>
    report:<run>:<step>    a report step's message (rendered now: it is a snapshot)
    report-chart:<run>:<step> its chart, uploaded into the report's thread
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime

from bot.slack.outbox import Outbox
from bot.slack.report_blocks import render_report
from orchestrator.protocol import InteractionView, RunView, StepView
from orchestrator.reports.chart import alt_text
from orchestrator.reports.figures import Report
from storage.types import utcnow


def board_key(run_id: str) -> str:
    return f"board:{run_id}"


def gate_key(iid: str) -> str:
    return f"gate:{iid}"


def step_key(run_id: str, step: StepView) -> str:
    return f"step:{run_id}:{step.step_id}:{step.attempts}"


class SlackFrontEnd:
    """Queues the messages a run needs in chat; the outbox dispatcher sends them."""

    def __init__(
        self,
        outbox: Outbox,
        default_channel: str | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.outbox = outbox
        self.default_channel = default_channel
        self.clock = clock

    def channel_of(self, run: RunView) -> str | None:
        """Where a run's messages go: its own channel, or the one for runs started outside Slack."""
        return run.channel or self.default_channel

    def board_changed(self, run: RunView, channel: str) -> None:
        """Edit the board; post it first if this process never saw the run start."""
        self.outbox.post(board_key(run.id), "board.post", channel=channel, run_id=run.id)
        self.outbox.edit(f"board-edit:{run.id}", "board.update", channel=channel, run_id=run.id,
                         after=board_key(run.id))  # fmt: skip

    def run_started(self, run: RunView) -> None:
        if channel := self.channel_of(run):
            self.outbox.post(board_key(run.id), "board.post", channel=channel, run_id=run.id)

    def step_changed(self, run: RunView, step: StepView) -> None:
        channel = self.channel_of(run)
        if channel is None:
            return
        self.board_changed(run, channel)
        if step.status == "failed":
            self.step_failed(run, step, channel)

    def step_failed(self, run: RunView, step: StepView, channel: str) -> None:
        """A failed step's details in the run's thread, once per attempt."""
        self.outbox.post(
            step_key(run.id, step), "thread.step", channel=channel, run_id=run.id,
            payload={"step_id": step.step_id}, after=board_key(run.id),
        )  # fmt: skip

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        if channel := self.channel_of(run):
            self.outbox.post(
                gate_key(interaction.id), "gate.post", channel=channel, run_id=run.id,
                payload={"interaction_id": interaction.id,
                         "broadcast": interaction.notify == "channel"},
                after=board_key(run.id),
            )  # fmt: skip
        for user in _dm_recipients(interaction):
            self.outbox.post(
                f"dm:{interaction.id}:{user}", "dm.post", channel=user, run_id=run.id,
                payload={"interaction_id": interaction.id},
            )  # fmt: skip

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        if channel := self.channel_of(run):
            self.outbox.edit(
                f"gate-edit:{interaction.id}", "gate.update", channel=channel, run_id=run.id,
                payload={"interaction_id": interaction.id}, after=gate_key(interaction.id),
            )  # fmt: skip
        for user in _dm_recipients(interaction):
            self.outbox.edit(
                f"dm-edit:{interaction.id}:{user}", "gate.update", channel=user, run_id=run.id,
                payload={"interaction_id": interaction.id}, after=f"dm:{interaction.id}:{user}",
            )  # fmt: skip

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        if channel := self.channel_of(run):
            self.outbox.post(
                f"escalate:{interaction.id}", "thread.escalation", channel=channel,
                run_id=run.id, payload={"interaction_id": interaction.id},
                after=board_key(run.id),
            )  # fmt: skip

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        """Nothing here: every reminder, whichever process fired it, is posted from its
        audit entry (`reminded`), so it is posted once whoever sees it first."""

    def reminded(self, run: RunView, interaction: InteractionView, entry: int) -> None:
        """The reminder audited as entry `entry` (bot/slack/nudges.py)."""
        if channel := self.channel_of(run):
            self.outbox.post(
                f"remind:{interaction.id}:{entry}", "thread.reminder", channel=channel,
                run_id=run.id, payload={"interaction_id": interaction.id},
                after=board_key(run.id),
            )  # fmt: skip

    def run_finished(self, run: RunView) -> None:
        if channel := self.channel_of(run):
            self.board_changed(run, channel)

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        if channel := channel or self.default_channel:
            key = f"schedule-paused:{schedule_id}:{self.clock().isoformat()}"
            payload = {"schedule_id": schedule_id, "reason": reason}
            self.outbox.post(key, "schedule.paused", channel=channel, run_id=None, payload=payload)

    def report_ready(
        self, run: RunView, step_id: str, report: Report, chart_png: bytes | None
    ) -> None:
        channel = self.channel_of(run)
        if channel is None:
            return
        key = f"report:{run.id}:{step_id}"
        note = "The chart follows in the thread." if chart_png else None
        self.outbox.post(key, "report.post", channel=channel, run_id=run.id,
                         payload={"content": render_report(report, chart_note=note)})  # fmt: skip
        if chart_png:
            payload = {"png": base64.b64encode(chart_png).decode(), "alt": alt_text(report),
                       "title": f"opsloop report {report.until:%Y-%m-%d}"}  # fmt: skip
            self.outbox.post(f"report-chart:{run.id}:{step_id}", "report.chart", channel=channel,
                             run_id=run.id, payload=payload, after=key)  # fmt: skip


def _dm_recipients(interaction: InteractionView) -> tuple[str, ...]:
    """With `notify: dm`, each listed person also gets the question in a direct message."""
    return interaction.allowed_users if interaction.notify == "dm" else ()
