"""The App Home tab: what waits for this person, and the latest runs. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack.text import context, divider, escaped, header, one_line, section
from orchestrator.protocol import InteractionView
from orchestrator.queries import RunSummary

MAX_HOME_BLOCKS = 100
_SHOWN = 40  # per list; each item is one block


def render_home(
    waiting: Sequence[InteractionView],
    runs: Sequence[RunSummary],
    next_fires: Sequence[dict[str, Any]] = (),
    this_week: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A `views.publish` view: open gates this user may answer, "this week" (blocks from
    report_blocks.render_week), recent runs, then the next scheduled runs (blocks from
    schedule_blocks.render_next_fires)."""
    blocks: list[dict[str, Any]] = [header("Waiting for you")]
    if not waiting:
        blocks.append(section("_Nothing is waiting for you._"))
    for item in waiting[:_SHOWN]:
        prompt = escaped(one_line(item.prompt), 300)
        blocks.append(section(f"*{escaped(item.kind, 20)}* in run `{escaped(item.run_id, 64)}`, "
                              f"step `{escaped(item.step_id, 80)}`: {prompt}"))  # fmt: skip
    if len(waiting) > _SHOWN:
        blocks.append(context(f"… and {len(waiting) - _SHOWN} more"))
    if this_week:
        blocks += [divider(), *this_week]
    blocks += [divider(), header("Recent runs")]
    for run in runs[:_SHOWN]:
        who = f"<@{escaped(run.started_by, 64)}>"
        what = f"`{escaped(run.id, 64)}` {escaped(run.workflow, 100)} *{escaped(run.status, 16)}*"
        blocks.append(context(f"{what} started by {who}"))
    if not runs:
        blocks.append(context("No runs yet: try `/ops run hello`."))
    if next_fires:
        blocks += [divider(), *next_fires]
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}
