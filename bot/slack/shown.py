"""What a sent message showed, in a few characters, kept in its outbox row's result.

The reconciler (bot/slack/reconciler.py) compares it with the current state to tell
whether a message is out of date, whoever changed the state: this process, the CLI or
another replica.
"""

from __future__ import annotations

from orchestrator.protocol import InteractionView, RunView


def run_shown(run: RunView) -> str:
    """A board: the run's status and each step's."""
    return run.status + "|" + ",".join(f"{s.step_id}={s.status}" for s in run.steps)


def gate_shown(interaction: InteractionView) -> str:
    """A gate message: open or how it closed, and how many answered (quorum progress)."""
    return f"{interaction.status}:{len(interaction.responses)}"
