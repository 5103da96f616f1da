"""`/ops schedules` and the App Home's next fires: schedules as Block Kit. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack import ids
from bot.slack.text import (
    MAX_MESSAGE_BLOCKS,
    button,
    context,
    date_ref,
    escape,
    escaped,
    header,
    section,
)
from orchestrator.schedules import ScheduleView

_SHOWN = 40  # one block each, within a message's 50


def render_schedules(views: Sequence[ScheduleView], *, manage: bool) -> dict[str, Any]:
    """Every schedule with its next fire and state; pause/resume buttons if `manage`."""
    live = [v for v in views if v.enabled]
    blocks: list[dict[str, Any]] = [header("Schedules")]
    if not live:
        blocks.append(section("_No schedules: add `schedules:` to a workflow file._"))
    for view in live[:_SHOWN]:
        line = section(schedule_line(view))
        if manage:
            line["accessory"] = _toggle(view)
        blocks.append(line)
    if len(live) > _SHOWN:
        blocks.append(context(f"… and {len(live) - _SHOWN} more: `opsloop schedules` lists all"))
    if not manage and live:
        blocks.append(context("Only admins may pause or resume schedules."))
    text = f"{len(live)} schedules"
    return {"text": text, "blocks": blocks[:MAX_MESSAGE_BLOCKS]}


def schedule_line(view: ScheduleView) -> str:
    """`id` workflow · cron (zone) · next fire or why none · last run."""
    what = (f"`{escaped(view.id, 100)}` {escaped(view.workflow, 100)} · "
            f"`{escaped(view.cron, 100)}` ({escaped(view.timezone, 64)})")  # fmt: skip
    if view.paused:
        reason = f": {escape(view.paused_reason)}" if view.paused_reason else ""
        state = f":double_vertical_bar: paused by {escaped(view.paused_by or '?', 64)}{reason}"
    elif view.next_fire_at is not None:
        state = f"next {date_ref(view.next_fire_at)}"
    else:
        state = "no next fire"
    last = ""
    if view.last_run_id:
        last = f" · last run `{escaped(view.last_run_id, 64)}` {view.last_run_status or ''}"
    missed = f" · {view.missed} missed" if view.missed else ""
    return f"{what}\n{state}{last.rstrip()}{missed}"


def _toggle(view: ScheduleView) -> dict[str, Any]:
    if view.paused:
        return button("Resume", ids.SCHEDULE_RESUME, ids.schedule_value(view.id), style="primary")
    return button("Pause", ids.SCHEDULE_PAUSE, ids.schedule_value(view.id))


def render_next_fires(views: Sequence[ScheduleView], limit: int = 5) -> list[dict[str, Any]]:
    """The App Home's "Next scheduled runs": the soonest active schedules."""
    due = [v for v in views if v.enabled and not v.paused and v.next_fire_at is not None]
    if not due:
        return []
    lines = [context(f"{date_ref(v.next_fire_at)} · `{escaped(v.id, 100)}`")  # type: ignore[arg-type]
             for v in due[:limit]]  # fmt: skip
    return [header("Next scheduled runs"), *lines]
