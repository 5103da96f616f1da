"""A report as a Slack message: header, key figures, top lists, the waiting list with
mentions. Pure, and within Slack's limits whatever the report holds (at most 12 blocks,
each section under 3000 characters, lists cut with "… and N more")."""

from __future__ import annotations

from typing import Any

from bot.durations import format_duration
from bot.report_text import headline, percent
from bot.slack.text import (
    MAX_FALLBACK_TEXT,
    MAX_SECTION_TEXT,
    context,
    date_ref,
    divider,
    escaped,
    group_ref,
    header,
    join_words,
    pack_lines,
    section,
    user_ref,
)
from orchestrator.reports.figures import Report, Waiting

TOP = 10


def render_report(report: Report, *, chart_note: str | None = None) -> dict[str, Any]:
    """{"text", "blocks"} for chat.postMessage / postEphemeral / respond."""
    only = ", ".join(report.workflows_filter)
    window = f"{date_ref(report.since)} to {date_ref(report.until)}"
    blocks: list[dict[str, Any]] = [
        header("Ops report: last " + _span(report)),
        context(window + (f" · only {escaped(only, 500)}" if only else "")),
        section(_key_figures(report)),
    ]
    for title, lines in (("Runs", _runs(report)), ("Failing steps", _failing(report)),
                         ("Slowest steps (p95)", _slowest(report)), ("Gates", _gates(report)),
                         ("Schedules", _schedules(report))):  # fmt: skip
        if lines:
            blocks += [divider(), *_list(title, lines)]
    blocks += [divider(), *_list("Waiting now, oldest first", _waiting(report))]
    if chart_note:
        blocks.append(context(chart_note))
    return {"text": escaped(headline(report), MAX_FALLBACK_TEXT), "blocks": blocks}


def _span(report: Report) -> str:
    seconds = (report.until - report.since).total_seconds()
    days = seconds / 86400
    return f"{days:.0f} days" if days >= 1 and days == int(days) else format_duration(seconds)


def _key_figures(report: Report) -> str:
    runs = sum(r.total for r in report.runs)
    return (
        f"*{runs}* runs · *{report.total('failed')}* failed · success "
        f"*{percent(report.success_rate)}* · *{len(report.waiting)}* waiting for a person\n"
        f"gates asked *{sum(g.asked for g in report.gates)}* · automation "
        f"*{percent(report.automation_rate)}* · reminders *{report.reminders}* · "
        f"escalations *{report.escalations}*"
    )


def _list(title: str, lines: list[str]) -> list[dict[str, Any]]:
    """A titled list in at most two sections; what does not fit is counted."""
    chunks = pack_lines([f"*{title}*", *lines], max_chunks=2, limit=MAX_SECTION_TEXT)
    return [section(chunk) for chunk in chunks]


def _runs(report: Report) -> list[str]:
    return [
        f"`{escaped(r.workflow, 80)}` {r.total} runs: {r.succeeded} ok, {r.failed} failed, "
        f"{r.cancelled} cancelled, {r.running} running · success {percent(r.success_rate)} · "
        f"p50 {format_duration(r.p50_s) or '-'} · p95 {format_duration(r.p95_s) or '-'}"
        for r in report.runs[:TOP]
    ] + _more(len(report.runs), "workflows")


def _failing(report: Report) -> list[str]:
    return [f"`{escaped(f.workflow, 80)}.{escaped(f.step_id, 80)}` failed {f.failures} times, last "
            f"in `{f.last_run_id}`: {escaped(f.last_error, 200)}"
            for f in report.failing_steps]  # fmt: skip


def _slowest(report: Report) -> list[str]:
    return [
        f"`{escaped(s.workflow, 80)}.{escaped(s.step_id, 80)}` {format_duration(s.p95_s)} "
        f"({s.count} runs)"
        for s in report.slowest_steps
    ]


def _gates(report: Report) -> list[str]:
    return [
        f"`{escaped(g.workflow, 80)}` asked {g.asked}: {g.approved} approved, {g.rejected} "
        f"rejected, {g.decided} decided, {g.by_deadline} by deadline, {g.auto_approved} auto · "
        f"decision p50 {format_duration(g.decision_p50_s) or '-'}, "
        f"p90 {format_duration(g.decision_p90_s) or '-'}"
        for g in report.gates[:TOP]
    ] + _more(len(report.gates), "workflows")


def _schedules(report: Report) -> list[str]:
    lines = [f"`{escaped(s.schedule_id, 200)}` missed {s.missed}, skipped {s.skipped}"
             for s in report.schedules[:TOP]]  # fmt: skip
    return lines + _more(len(report.schedules), "schedules")


def _waiting(report: Report) -> list[str]:
    if not report.waiting:
        return ["Nothing waits for a person."]
    return [_waiting_line(w) for w in report.waiting]


def _waiting_line(w: Waiting) -> str:
    who = [group_ref(x) if x.startswith("S") else user_ref(x) for x in w.waits_for]
    return (f"`{escaped(w.workflow, 80)}.{escaped(w.step_id, 80)}` in `{w.run_id}` for "
            f"{format_duration(w.age_s)}, waiting for {join_words(who) or 'anyone'}")  # fmt: skip


def _more(n: int, what: str) -> list[str]:
    return [f"… and {n - TOP} more {what} (`opsloop report`)"] if n > TOP else []


def render_week(report: Report) -> list[dict[str, Any]]:
    """The App Home's "this week": runs by outcome, success rate, time to decision p50
    and the gates waiting now, in one section."""
    runs = sum(r.total for r in report.runs)
    outcomes = ", ".join(f"{report.total(o)} {o}"
                         for o in ("succeeded", "failed", "cancelled", "running"))  # fmt: skip
    text = (f"*{runs}* runs: {outcomes} · success *{percent(report.success_rate)}* · "
            f"time to decision p50 *{format_duration(report.decision_p50_s) or '-'}* · "
            f"*{len(report.waiting)}* gates waiting now")  # fmt: skip
    return [header("This week"), section(text, block_id="this-week")]
