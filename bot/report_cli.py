"""`opsloop report`: the ops report of a window as a table, JSON, or a chart file.

It reads the database only, so it works while `serve` runs elsewhere.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.cli_io import EXIT_OK, Stop, open_reader, print_json, settings_of


def register(sub: Any, *parents: argparse.ArgumentParser) -> None:
    """Add `report` to the `opsloop` parser; `parents`: common and output options."""
    cmd = sub.add_parser("report", help="the ops report of the last days",
                         description=__doc__, parents=list(parents))  # fmt: skip
    cmd.add_argument("--since", default="7d", help="how far back: 24h, 7d, 90d (default 7d)")
    cmd.add_argument("--workflow", action="append", default=[], metavar="W",
                     help="only this workflow (repeat for several)")  # fmt: skip
    cmd.add_argument("--chart", metavar="FILE.png", help="also write the chart as PNG")
    cmd.set_defaults(func=cmd_report)


def since_of(text: str) -> timedelta:
    """`7d`, `24h`, `90d`... as a timedelta; Stop saying how to write it otherwise."""
    from orchestrator.workflow.yaml_converters import parse_duration

    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError:
        hint = "write 24h, 7d or 90d (at most 365d)"
        raise Stop(f"--since {text!r} is not a duration; {hint}") from None


def cmd_report(args: argparse.Namespace) -> int:
    from bot.report_text import format_report
    from orchestrator.clock import SystemClock
    from orchestrator.reports.build import build_report

    since = since_of(args.since)
    report = build_report(open_reader(settings_of(args)), SystemClock().now(), since,
                          tuple(args.workflow))  # fmt: skip
    if args.chart:
        from orchestrator.reports.chart import alt_text, render_chart

        path = Path(args.chart)
        try:
            path.write_bytes(render_chart(report))
        except OSError as exc:
            raise Stop(f"cannot write the chart to {path}: {exc.strerror}") from exc
        if not args.json:
            print(f"chart: {path} ({alt_text(report)})\n")
    if args.json:
        print_json(report.to_json())
    else:
        print(format_report(report))
    return EXIT_OK
