"""The report's chart: runs per day stacked by outcome, and people's time to decision
(p50) per day on a second axis. One PNG, about 900x450 px, readable on a phone.

Pure (a Report in, bytes out). matplotlib is imported here, inside `render_chart`,
with the Agg backend: only a report that draws a chart pays for it.
"""

from __future__ import annotations

import io

from orchestrator.reports.figures import Report

OUTCOMES = (("succeeded", "#2e7d32"), ("failed", "#c62828"), ("cancelled", "#9e9e9e"),
            ("running", "#1565c0"))  # fmt: skip
SIZE_IN, DPI = (9.0, 4.5), 100


def render_chart(report: Report) -> bytes:
    """The chart as PNG bytes (well under 200 KB: flat colours, no antialiased fills)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    days = report.days
    labels = [d.day[5:] for d in days]  # MM-DD
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.subplots()
    bottom = [0] * len(days)
    for outcome, colour in OUTCOMES:
        counts = [getattr(d, outcome) for d in days]
        ax.bar(labels, counts, bottom=bottom, color=colour, label=outcome, width=0.7)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_ylabel("runs per day")
    ax.yaxis.get_major_locator().set_params(integer=True)
    minutes = [None if d.decision_p50_s is None else d.decision_p50_s / 60 for d in days]
    right = ax.twinx()
    right.plot(labels, [m if m is not None else float("nan") for m in minutes], color="#ef6c00",
               marker="o", linewidth=2, label="time to decision p50 (min)")  # fmt: skip
    right.set_ylabel("time to decision p50 (minutes)")
    right.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelrotation=45 if len(days) > 14 else 0, labelsize=8)
    if len(days) > 31:  # a label every week
        for i, tick in enumerate(ax.get_xticklabels()):
            tick.set_visible(i % 7 == 0)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    ax.set_title(f"opsloop: {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def alt_text(report: Report) -> str:
    """What the chart shows, in words (Slack's alt_txt; at most 1000 characters)."""
    days = report.days
    busiest = max(days, key=lambda d: d.succeeded + d.failed + d.cancelled + d.running,
                  default=None)  # fmt: skip
    text = (
        f"Bar chart of runs per day from {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}, "
        f"stacked by outcome: {report.total('succeeded')} succeeded, "
        f"{report.total('failed')} failed, {report.total('cancelled')} cancelled, "
        f"{report.total('running')} still running."
    )
    if busiest is not None:
        n = busiest.succeeded + busiest.failed + busiest.cancelled + busiest.running
        text += f" The busiest day was {busiest.day} with {n} runs."
    timed = [d for d in days if d.decision_p50_s is not None]
    if timed:
        slowest = max(timed, key=lambda d: d.decision_p50_s or 0.0)
        text += (f" A line shows people's median time to decision per day; the slowest was "
                 f"{slowest.day} at {(slowest.decision_p50_s or 0) / 60:.0f} minutes.")  # fmt: skip
    return text[:1000]
