"""The `report:` step: compute the figures, draw the chart if asked, tell the front end
(which posts them to the run's channel), and return the figures as the step's outputs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.protocol import RunView
from orchestrator.reports.audience import Audience, channel_audience
from orchestrator.reports.build import build_report
from orchestrator.reports.chart import render_chart
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import ReportAction


def run_report(services: Services, run: RunView, step_id: str, action: ReportAction) -> dict:
    """The step's body; its outputs are `Report.to_json()` (so `if:` can read `failed`)."""
    for attempt in storage_attempts():
        with attempt:
            report = build_report(
                services.engine, services.clock.now(), timedelta(seconds=action.since_s),
                action.workflows, _audience(run, action),
            )  # fmt: skip
    chart = render_chart(report) if action.chart else None
    services.front_end.report_ready(run, step_id, report, chart)
    outputs: dict[str, Any] = report.to_json()
    outputs["chart_bytes"] = len(chart) if chart is not None else 0
    return outputs


def _audience(run: RunView, action: ReportAction) -> Audience | None:
    """Everyone in the channel reads the post: the runs of that channel (audience.py), and
    those of the channels the workflow's author listed in `channels:` (`all`: every run)."""
    if "*" in action.channels:
        return None
    return channel_audience(run.channel, *action.channels)
