"""The console front end: live progress lines, step tables and JSON for the CLI.

`ConsoleFrontEnd` implements the orchestrator's `FrontEnd` protocol by writing
one line per event; the `format_*` functions are pure and render whole runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.durations import format_duration
from bot.report_text import format_report
from orchestrator.protocol import InteractionView, RunView, StepView
from orchestrator.reports.figures import Report
from orchestrator.run_list import RunSummary
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.gate_definitions import InputField

ICONS = {
    "pending": "·", "running": "▶", "waiting": "⏸", "succeeded": "✓", "failed": "✗",
    "skipped": "⊘", "cancelled": "■",
}  # fmt: skip
ANSWERS = {"approval": "approve|reject", "decision": "OPTION", "input": "FIELD=VALUE ..."}


def fmt_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}"
                    for k, v in params.items())  # fmt: skip


def _kind(workflow: Workflow | None, step_id: str) -> str:
    if workflow is None:
        return ""
    try:
        return workflow.step(step_id).kind
    except KeyError:
        return ""


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def format_steps(run: RunView, workflow: Workflow | None) -> str:
    rows = [
        [s.step_id, _kind(workflow, s.step_id), f"{ICONS.get(s.status, '?')} {s.status}",
         str(s.attempts or ""), format_duration(s.duration_s), _cell(s.error or "", 60)]
        for s in run.steps
    ]  # fmt: skip
    return format_table(["step", "kind", "status", "tries", "time", "error"], rows)


def answer_hint(interaction: InteractionView) -> str:
    if interaction.purpose == "recovery":
        answer = "retry|skip|fail"
    elif interaction.kind == "decision":
        answer = "|".join(o.value for o in interaction.options) or ANSWERS["decision"]
    elif interaction.kind == "input" and interaction.fields:
        answer = " ".join(_field_hint(f) for f in interaction.fields)
    else:
        answer = ANSWERS.get(interaction.kind, "ANSWER")
    return f"opsloop decide {interaction.id} {answer} --as USER"


def _field_hint(field: InputField) -> str:
    """`name=VALUE` as `decide` takes it: the choices or the type; optional ones in []."""
    if field.type == "choice":
        value = "|".join(field.choices)
    else:
        value = {"number": "NUMBER", "multiline": "TEXT"}.get(field.type, "TEXT")
    hint = f"{field.name}={value}"
    return hint if field.required else f"[{hint}]"


def format_interaction(interaction: InteractionView) -> str:
    who = [*interaction.allowed_users, *(f"@{g}" for g in interaction.allowed_groups)]
    lines = [
        f"  {interaction.id}  step {interaction.step_id} ({interaction.kind}): "
        f"{_cell(interaction.prompt, 200)}"
    ]
    if interaction.required > 1:
        lines.append(f"      {interaction.approvals} of {interaction.required} approvals")
    if who:
        lines.append(f"      who may answer: {', '.join(who)}")
    if interaction.deadline is not None:
        lines.append(f"      deadline: {_iso(interaction.deadline)}")
    lines.append(f"      answer: {answer_hint(interaction)}")
    return "\n".join(lines)


def format_run(run: RunView, workflow: Workflow | None, pending: Sequence[InteractionView]) -> str:
    lines = [
        f"run {run.id}  {run.workflow}  {ICONS.get(run.status, '?')} {run.status}",
        f"started by {run.started_by}" + (f"; {fmt_params(run.params)}" if run.params else ""),
    ]
    if run.error:
        lines.append(f"error: {run.error}")
    lines += ["", format_steps(run, workflow)]
    outputs = [f"  {s.step_id}: {_cell(_outputs(s.outputs), 110)}" for s in run.steps if s.outputs]
    if outputs:
        lines += ["", "outputs:", *outputs]
    if pending:
        lines += ["", "waiting for a person:", *map(format_interaction, pending)]
    return "\n".join(lines)


def _outputs(outputs: Mapping[str, Any]) -> str:
    shown = {k: v.strip() if isinstance(v, str) else v for k, v in outputs.items()}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items() if v not in ("", None))


def format_runs(summaries: Sequence[RunSummary]) -> str:
    if not summaries:
        return "no runs yet; start one with `opsloop run WORKFLOW`"
    rows = [
        [s.id, s.workflow, f"{ICONS.get(s.status, '?')} {s.status}",
         str(s.waiting_for or ""), s.started_by, _iso(s.created_at)]
        for s in summaries
    ]  # fmt: skip
    return format_table(["run", "workflow", "status", "waiting", "started by", "created"], rows)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    return value.isoformat()


def summary_json(s: RunSummary) -> dict[str, Any]:
    """A run as `runs --json` lists it: the keys `show --json` has, and when it started and
    ended (README "JSON output": one shape per object, times ISO 8601 in UTC)."""
    return {
        "run_id": s.id, "workflow": s.workflow, "status": s.status, "started_by": s.started_by,
        "created_at": _jsonable(s.created_at), "finished_at": _jsonable(s.finished_at),
        "waiting_for": s.waiting_for,
    }  # fmt: skip


def run_json(run: RunView, pending: Sequence[InteractionView]) -> dict[str, Any]:
    """What `--json` prints: stable keys for scripts."""
    return {
        "run_id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "error": run.error,
        "params": run.params,
        "started_by": run.started_by,
        "steps": [
            {
                "id": s.step_id,
                "status": s.status,
                "attempts": s.attempts,
                "started_at": _jsonable(s.started_at),
                "finished_at": _jsonable(s.finished_at),
                "duration_s": s.duration_s,
                "error": s.error,
                "outputs": s.outputs,
            }
            for s in run.steps
        ],
        "pending": [interaction_json(i) for i in pending],
    }


def interaction_json(i: InteractionView) -> dict[str, Any]:
    """One open interaction as `--json` prints it."""
    return {
        "id": i.id,
        "run_id": i.run_id,
        "step": i.step_id,
        "kind": i.kind,
        "purpose": i.purpose,
        "prompt": i.prompt,
        "options": [o.value for o in i.options],
        "fields": [f.name for f in i.fields],
        "required": i.required,
        "allowed_users": list(i.allowed_users),
        "allowed_groups": list(i.allowed_groups),
        "deadline": _jsonable(i.deadline),
    }


class ConsoleFrontEnd:
    """Prints one line per event as the run moves; safe to call from worker threads."""

    def __init__(
        self, out: TextIO, workflow_of: Callable[[RunView], Workflow | None] = lambda run: None
    ) -> None:
        self.out = out
        self.workflow_of = workflow_of  # the run's own version, for step kinds
        self._lock = threading.Lock()
        self._closed = False  # the reader went away: say nothing more

    def _say(self, text: str) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                print(text, file=self.out, flush=True)
            except BrokenPipeError:  # `opsloop run hello | head`: the reader has had enough
                self._closed = True
                with contextlib.suppress(OSError, ValueError):  # nor fail the exit's flush
                    os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())

    def run_started(self, run: RunView) -> None:
        params = f": {fmt_params(run.params)}" if run.params else ""
        self._say(f"run {run.id} ({run.workflow}) started by {run.started_by}{params}")

    def step_changed(self, run: RunView, step: StepView) -> None:
        kind = _kind(self.workflow_of(run), step.step_id)
        note = ""
        if step.status in ("succeeded", "failed"):
            note = format_duration(step.duration_s)
        if step.status == "running" and step.attempts > 1:
            note = f"attempt {step.attempts}"
        if step.status == "waiting":
            note = "for a person"
        if step.error:
            note = f"{note}  {_cell(step.error, 100)}".strip()
        line = f"  {ICONS.get(step.status, '?')} {step.step_id:<20} {kind:<8} {step.status:<9}"
        self._say(f"{line} {note}".rstrip())

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        self._say(f"  ? {interaction.step_id}: {_cell(interaction.prompt, 200)}")
        self._say(f"    answer: {answer_hint(interaction)}")

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        if interaction.status == "pending":
            got = f"{interaction.approvals} of {interaction.required} approvals"
            self._say(f"  … {interaction.step_id}: {got}")
            return
        answer = interaction.answer
        what = interaction.status if answer in (None, "approve", "reject") else f"{answer!r}"
        self._say(f"  ✓ {interaction.step_id}: {what} by {interaction.answered_by}")

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        self._say(f"  ⏰ still waiting: {interaction.step_id} ({answer_hint(interaction)})")

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        to = interaction.escalate_to or {}
        who = ", ".join([*to.get("users", ()), *(f"@{g}" for g in to.get("groups", ()))])
        self._say(f"  ⚠ escalated to {who}: {interaction.step_id} is still waiting")

    def run_finished(self, run: RunView) -> None:
        error = f": {run.error}" if run.error else ""
        self._say(f"run {run.id} {run.status}{error}")

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        self._say(f"schedule {schedule_id} paused: {reason} (`opsloop schedules resume` "
                  "starts it again)")  # fmt: skip

    def report_ready(
        self, run: RunView, step_id: str, report: Report, chart_png: bytes | None
    ) -> None:
        chart = f"\n(chart: {len(chart_png):,} bytes PNG)" if chart_png else ""
        self._say(format_report(report) + chart)
