"""The `report:` step and `opsloop report`: the figures as a step's outputs that `if:`
reads, posted through the front end; the CLI's table, JSON and chart file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from bot.cli import main
from orchestrator.clock import FakeClock
from orchestrator.errors import DefinitionError
from orchestrator.protocol import RunView, SilentFrontEnd
from orchestrator.reports.figures import Report
from orchestrator.workflow.loader import parse_workflow
from tests.orchestrators import running

FLAKY = """
name: flaky
steps:
  - id: boom
    shell: ["sh", "-c", "echo no space left >&2; exit 3"]
"""

DIGEST = """
name: digest
steps:
  - id: digest
    report: {since: 1d, workflows: [flaky], chart: true}
  - id: page
    needs: digest
    if: "steps.digest.outputs.failed > 0"
    shell: ["echo", "{{ steps.digest.outputs.failed }} failed"]
"""


class Reports(SilentFrontEnd):
    def __init__(self) -> None:
        self.got: list[tuple[str, Report, bytes | None]] = []

    def report_ready(
        self, run: RunView, step_id: str, report: Report, chart_png: bytes | None
    ) -> None:
        self.got.append((step_id, report, chart_png))


def test_a_report_step_posts_the_figures_and_if_reads_its_outputs(engine: sa.Engine) -> None:
    told, clock = Reports(), FakeClock()
    with running(engine, FLAKY, DIGEST, clock=clock, front_end=told) as orch:
        quiet = orch.wait(orch.start_run("digest", {}, started_by="U0OPS"))
        assert [s.status for s in quiet.steps] == ["succeeded", "skipped"]  # nothing failed
        assert orch.wait(orch.start_run("flaky", {}, started_by="U0OPS")).status == "failed"
        clock.advance(1)  # the window ends now, and leaves now out
        paged = orch.wait(orch.start_run("digest", {}, started_by="U0OPS"))
    digest, page = paged.steps
    assert page.status == "succeeded" and page.outputs["stdout"].strip() == "1 failed"
    assert digest.outputs["failed"] == 1 and digest.outputs["runs"][0]["workflow"] == "flaky"
    assert digest.outputs["failing_steps"][0]["last_error"] == "sh exited with 3: no space left"
    step_id, report, png = told.got[-1]
    assert step_id == "digest" and report.total("failed") == 1
    assert png is not None and png[:4] == b"\x89PNG" and digest.outputs["chart_bytes"] == len(png)


ASKING = """
name: asking
steps:
  - id: approve
    approval: {message: "Go?", approvers: {users: [U0BOSS]}}
"""

CHANNEL_DIGEST = """
name: digest
steps:
  - id: digest
    report: {since: 1d}
"""


def test_a_report_posted_in_a_channel_counts_only_that_channels_runs(
    engine: sa.Engine,
) -> None:
    """Everyone in the channel reads the post: runs of other channels stay out of it
    (access.py: a run is visible in its channel), and so do their open gates."""
    told, clock = Reports(), FakeClock()
    with running(engine, FLAKY, ASKING, CHANNEL_DIGEST, clock=clock, front_end=told) as orch:
        for channel in ("C0HERE", "C0ELSEWHERE", "C0ELSEWHERE", None):
            orch.wait(orch.start_run("flaky", {}, started_by="U0OPS", channel=channel))
        orch.wait(orch.start_run("asking", {}, started_by="U0OPS", channel="C0ELSEWHERE"))
        clock.advance(1)
        here = orch.wait(orch.start_run("digest", {}, started_by="U0OPS", channel="C0HERE"))
        nowhere = orch.wait(orch.start_run("digest", {}, started_by="U0OPS"))
    figures = here.steps[0].outputs
    assert (figures["failed"], figures["total"], figures["waiting_count"]) == (1, 1, 0)
    assert figures["gates_asked"] == 0 and figures["gates"] == []
    [(_, report, _), _] = told.got
    assert report.failing_steps[0].failures == 1 and report.waiting == ()
    # A run with no channel posts to the default channel, with the other runs that have none.
    assert (nowhere.steps[0].outputs["failed"], nowhere.steps[0].outputs["total"]) == (1, 1)


WIDE_DIGEST = """
name: wide
steps:
  - id: listed
    report: {since: 1d, channels: [C0ELSEWHERE]}
  - id: everything
    report: {since: 1d, channels: all}
"""


def test_a_report_counts_the_channels_its_workflow_lists_or_all(engine: sa.Engine) -> None:
    """A digest in #ops of deploys started elsewhere: the workflow's author names those
    channels (or `all`); the file is the operator's, as `access:` is."""
    clock = FakeClock()
    with running(engine, FLAKY, WIDE_DIGEST, clock=clock, front_end=Reports()) as orch:
        for channel in ("C0HERE", "C0ELSEWHERE", "C0THIRD", None):
            orch.wait(orch.start_run("flaky", {}, started_by="U0OPS", channel=channel))
        clock.advance(1)
        wide = orch.wait(orch.start_run("wide", {}, started_by="U0OPS", channel="C0HERE"))
    listed, everything = (step.outputs for step in wide.steps)
    assert (listed["failed"], listed["total"]) == (2, 2)  # C0HERE and C0ELSEWHERE
    assert (everything["failed"], everything["total"]) == (4, 4)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("report: {since: soon}", "bad.yml:4: since must be a duration"),
        ("report: {chart: maybe}", "bad.yml:4: chart must be true or false"),
        ("report: {colour: red}", "bad.yml:4: unknown key `colour` in report"),
        ("report: {channels: [C0 OPS]}", "bad.yml:4: `C0 OPS` in channels is not a channel"),
        ("report: {}\n    retry: {attempts: 2}", "bad.yml:5: retry applies to python and shell"),
    ],
)
def test_a_bad_report_step_is_refused_with_file_and_line(body: str, message: str) -> None:
    text = f"name: bad\nsteps:\n  - id: digest\n    {body}\n"
    with pytest.raises(DefinitionError) as caught:
        parse_workflow(text, source="bad.yml")
    assert message in str(caught.value)


def test_opsloop_report_prints_a_table_json_and_writes_the_chart(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "flaky.yml").write_text(FLAKY)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPSLOOP_WORKFLOWS", str(flows))
    assert main(["run", "flaky", "--no-prompt"]) == 1
    capsys.readouterr()
    chart = tmp_path / "week.png"
    assert main(["report", "--since", "7d", "--workflow", "flaky", "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "1 run, 1 failed, success 0%" in out and "flaky.boom" in out
    assert Image.open(chart).size == (900, 450)
    assert main(["report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == 1
    assert main(["report", "--since", "forever"]) == 2
    assert "--since 'forever' is not a duration" in capsys.readouterr().err
