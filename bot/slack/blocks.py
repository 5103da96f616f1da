"""Block Kit messages for runs. Pure: views in, `{"text", "blocks"}` dicts out.

Each renderer returns the arguments of chat.postMessage / chat.update minus the
channel and ts: `text` is the notification fallback, `blocks` the message. All
text that people or workflows wrote is escaped, and everything is cut to fit
Slack's limits (text.py), whatever the size of the run.

    render_run_board     the run's parent message, edited in place
    render_step_detail   a thread reply about one step (failures, details)
    render_interaction   a gate's message in the thread (gate_blocks.py)
    render_reminder      a reminder or escalation in the thread (gate_blocks.py)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.durations import format_duration
from bot.slack.gate_blocks import render_interaction, render_reminder
from bot.slack.text import (
    MAX_FALLBACK_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    code_block,
    context,
    divider,
    escape,
    escaped,
    header,
    key_value_line,
    one_line,
    pack_lines,
    section,
    truncate,
    user_ref,
)
from orchestrator.protocol import RunView, StepView
from storage.statuses import FINISHED_RUN

__all__ = [
    "STATUS_ICONS",
    "render_interaction",
    "render_reminder",
    "render_run_board",
    "render_step_detail",
    "run_duration",
    "status_icon",
]

STATUS_ICONS: Mapping[str, str] = {
    "pending": ":white_circle:",
    "running": ":arrows_counterclockwise:",
    "waiting": ":raised_hand:",  # waiting for a person
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "cancelled": ":no_entry_sign:",
}
UNKNOWN_ICON = ":grey_question:"
_BOARD_BUDGET = 6000  # characters of step lines on the run board
_PARAMS_BUDGET = 1000
_LINE_LIMIT = 200
# When the board cannot show every step, these are the ones kept first.
_BOARD_PRIORITY = {"failed": 0, "waiting": 1, "running": 2, "cancelled": 3, "pending": 4}
_STATUS_ORDER = ("failed", "waiting", "running", "pending", "succeeded", "skipped", "cancelled")


def status_icon(status: str) -> str:
    return STATUS_ICONS.get(status, UNKNOWN_ICON)


# -- the run's parent message --------------------------------------------------


def render_run_board(run: RunView, *, now: datetime | None = None) -> dict[str, Any]:
    """The run's parent message: params, who started it, a status board, and the summary.

    `now` lets the board show how long running steps have been running.
    """
    blocks: list[dict[str, Any]] = [
        header(f"{status_icon(run.status)} {run.workflow}"),
        section(_run_line(run, now)),
        section(_params_text(run.params)),
        context(_counts(run.steps)),
        divider(),
    ]
    trailer = [section(_summary(run))] if run.status in FINISHED_RUN else []
    room = MAX_MESSAGE_BLOCKS - len(blocks) - len(trailer)
    blocks += [section(text) for text in _board(run.steps, now, room)]
    blocks += trailer
    text = escaped(f"{run.workflow} run {run.id}: {run.status}", MAX_FALLBACK_TEXT)
    return {"text": text, "blocks": blocks}


def _run_line(run: RunView, now: datetime | None) -> str:
    line = f"Run `{escape(run.id)}` · started by {user_ref(run.started_by)}"
    line += f" · {status_icon(run.status)} *{escape(run.status)}*"
    took = format_duration(run_duration(run, now))
    return f"{line} · {took}" if took else line


def run_duration(run: RunView, now: datetime | None = None) -> float | None:
    """Seconds from the first step's start to the last step's end (or `now`)."""
    starts = [s.started_at for s in run.steps if s.started_at]
    if not starts:
        return None
    ends = [s.finished_at for s in run.steps if s.finished_at]
    end = max(ends) if run.status in FINISHED_RUN and ends else now
    return None if end is None else (end - min(starts)).total_seconds()


def _params_text(params: Mapping[str, Any]) -> str:
    if not params:
        return "_no parameters_"
    lines = [key_value_line(k, v, _LINE_LIMIT) for k, v in params.items()]
    return pack_lines(lines, max_chunks=1, limit=_PARAMS_BUDGET)[0]


def _counts(steps: Sequence[StepView]) -> str:
    counts = Counter(s.status for s in steps)
    parts = [f"{status_icon(st)} {counts[st]} {st}" for st in _STATUS_ORDER if counts[st]]
    parts += [f"{status_icon(st)} {n} {escape(st)}" for st, n in counts.items()
              if st not in _STATUS_ORDER]  # fmt: skip
    total = f"{len(steps)} step{'' if len(steps) == 1 else 's'}"
    return " · ".join([total, *parts])


def _board(steps: Sequence[StepView], now: datetime | None, room: int) -> list[str]:
    if not steps:
        return ["_no steps_"]
    lines = [_step_line(s, now) for s in steps]
    if sum(len(line) + 1 for line in lines) > _BOARD_BUDGET:
        lines = _most_telling(steps, lines)
    return pack_lines(lines, max_chunks=max(room, 1), more="… and {n} more steps")


def _most_telling(steps: Sequence[StepView], lines: list[str]) -> list[str]:
    """The lines that fit the budget, failures and waits first, shown in workflow order."""
    budget = _BOARD_BUDGET - 200  # room for the "... and N more" line
    ranked = sorted(range(len(steps)), key=lambda i: (_BOARD_PRIORITY.get(steps[i].status, 9), i))
    kept: set[int] = set()
    for i in ranked:
        if len(lines[i]) + 1 > budget:
            break
        kept.add(i)
        budget -= len(lines[i]) + 1
    hidden = Counter(steps[i].status for i in range(len(steps)) if i not in kept)
    summary = ", ".join(f"{n} {escape(st)}" for st, n in hidden.most_common())
    more = f"… and {sum(hidden.values())} more steps: {summary}"
    return [lines[i] for i in sorted(kept)] + [truncate(more, 200)]


def _step_line(step: StepView, now: datetime | None) -> str:
    parts = [f"{status_icon(step.status)} `{escaped(step.step_id, 80)}` {escape(step.status)}"]
    seconds = step.duration_s
    if seconds is None and step.started_at and now and step.status == "running":
        seconds = (now - step.started_at).total_seconds()
    if took := format_duration(seconds):
        parts.append(took)
    if step.attempts > 1:
        parts.append(f"attempt {step.attempts}")
    line = " · ".join(parts)
    if step.status == "failed" and step.error:
        line += f" — {escaped(one_line(step.error), 80)}"
    return truncate(line, _LINE_LIMIT)


def _summary(run: RunView) -> str:
    took = format_duration(run_duration(run))
    head = f"{status_icon(run.status)} *{escape(run.status).capitalize()}*"
    head += f" in {took}" if took else ""
    if run.error:
        return f"{head}: {escaped(run.error, 1500)}"
    counts = Counter(s.status for s in run.steps)
    return f"{head}: " + ", ".join(f"{n} {escape(st)}" for st, n in counts.most_common()) + "."


# -- thread replies ------------------------------------------------------------


def render_step_detail(
    run: RunView, step: StepView, *, now: datetime | None = None
) -> dict[str, Any]:
    """A thread reply about one step: status, duration, error tail and output tails."""
    head = f"{status_icon(step.status)} Step `{escaped(step.step_id, 80)}` *{escape(step.status)}*"
    seconds = step.duration_s
    if seconds is None and step.started_at and now:
        seconds = (now - step.started_at).total_seconds()
    if took := format_duration(seconds):
        head += f" after {took}"
    if step.attempts > 1:
        head += f" ({step.attempts} attempts)"
    head += f" · `{escaped(run.workflow, 100)}` run `{escaped(run.id, 80)}`"
    blocks = [section(truncate(head, MAX_SECTION_TEXT))]
    if step.error:
        blocks.append(section("*Error*\n" + code_block(step.error, MAX_SECTION_TEXT - 10)))
    blocks += _output_blocks(step.outputs or {})
    text = f"Step {step.step_id} {step.status}"
    if step.error:
        text += f": {one_line(step.error)}"
    return {"text": escaped(text, 300), "blocks": blocks}


def _output_blocks(outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for stream in ("stdout", "stderr"):
        value = outputs.get(stream)
        if isinstance(value, str) and value.strip():
            body = code_block(value, 2500)
            blocks.append(section(f"*{stream}* (last lines)\n{body}"))
    rest = [key_value_line(k, v, 300) for k, v in outputs.items() if k not in ("stdout", "stderr")]
    if rest:
        blocks.append(section("*Outputs*\n" + pack_lines(rest, max_chunks=1, limit=2000)[0]))
    return blocks


def render_schedule_paused(schedule_id: str, reason: str) -> dict[str, Any]:
    """A schedule paused itself (pause_after_failures): say why and how to resume it."""
    head = f":double_vertical_bar: Schedule `{escaped(schedule_id, 100)}` paused: {escape(reason)}"
    hint = f"`opsloop schedules resume {escaped(schedule_id, 100)}` starts it again."
    blocks = [section(truncate(head, MAX_SECTION_TEXT)), context(hint)]
    return {"text": escaped(f"Schedule {schedule_id} paused: {reason}", 300), "blocks": blocks}


def render_chart_failed(error: str, alt: str) -> dict[str, Any]:
    """The report's chart could not be uploaded: say so, and what it would have shown."""
    head = f":warning: The chart could not be uploaded ({escaped(error, 200)})."
    blocks = [section(truncate(head, MAX_SECTION_TEXT)), context(escaped(alt, 1000))]
    return {"text": escaped(f"The chart could not be uploaded: {error}", 300), "blocks": blocks}
