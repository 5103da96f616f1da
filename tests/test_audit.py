"""The audit log people read: `opsloop audit`, and the trail at the end of `opsloop show`,
called as the console script's entry function on real databases and workflow files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_harness import Cli, in_process_cli
from tests.sample_workflows import GATED, workflow_dir


@pytest.fixture
def cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Cli:
    """Call `opsloop ARGS...` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("OPSLOOP_ADMINS", raising=False)
    return in_process_cli(db_url, workflow_dir(tmp_path, {"gated": GATED}), monkeypatch, capsys)


def approved_run(cli) -> str:
    """A gated run: U0EVE refused at its gate, then U0BOSS approves and it succeeds."""
    _, out, _ = cli("run", "gated", "service=api", "--json")
    run = json.loads(out)
    [gate] = run["pending"]
    assert cli("decide", gate["id"], "approve", "--as", "U0EVE")[0] == 2
    assert cli("decide", gate["id"], "approve", "--as", "U0BOSS", "--comment", "ship it")[0] == 0
    return run["run_id"]


def test_audit_of_a_run_is_a_table_newest_last_with_who_what_and_which_step(cli) -> None:
    run_id = approved_run(cli)
    code, out, err = cli("audit", run_id)
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["TIME", "ACTOR", "ACTION", "RUN", "STEP", "DETAIL"]
    actions = [row.split()[3] for row in rows]  # the time is two words
    assert actions == ["run.started", "interaction.opened", "interaction.refused",
                       "interaction.answered", "run.succeeded"]  # fmt: skip
    started, _, refused, answered, _ = rows
    assert "U0OPS" in started and "service=api" in started and "front_end=cli" in started
    assert "U0EVE" in refused and "approve" in refused and "may not answer" in refused
    assert "U0BOSS" in answered and "answer=approve" in answered and "'ship it'" in answered


def test_audit_json_filters_by_actor_as_gates_compare_ids_and_by_time(cli) -> None:
    run_id = approved_run(cli)
    approved_run(cli)  # another run: not in this run's audit
    code, out, _ = cli("audit", run_id, "--actor", " u0boss ", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert set(entry) == {"at", "actor", "action", "run_id", "step_id", "interaction_id",
                          "detail"}  # fmt: skip
    assert (entry["actor"], entry["action"], entry["run_id"], entry["step_id"]) == (
        "U0BOSS", "interaction.answered", run_id, "approve")  # fmt: skip
    assert entry["detail"]["answer"] == "approve" and entry["detail"]["comment"] == "ship it"

    _, out, _ = cli("audit", "--actor", "U0BOSS", "--since", "1h", "--json")
    assert len(json.loads(out)) == 2  # both runs
    _, out, _ = cli("audit", "--since", "2999-01-01", "--json")
    assert json.loads(out) == []
    assert cli("audit", "--since", "2999-01-01")[1].strip() == "no audit entries match"


def test_audit_mistakes_exit_2_with_the_fix(cli) -> None:
    assert cli("db", "upgrade")[0] == 0  # audit only reads: it creates no schema
    code, _, err = cli("audit", "--since", "last tuesday")
    assert code == 2 and "7d" in err and "Traceback" not in err
    code, _, err = cli("audit", "r-nope")
    assert code == 2 and "no run 'r-nope'" in err


def test_as_shows_only_what_that_person_may_see_never_more(cli, monkeypatch) -> None:
    run_id = approved_run(cli)
    everything = json.loads(cli("audit", "--json")[1])
    assert {e["run_id"] for e in everything} == {run_id}
    # U0EVE is neither its requester nor asked by its gate: not even her own refusal shows.
    assert json.loads(cli("audit", "--as", "U0EVE", "--json")[1]) == []
    assert json.loads(cli("audit", "--as", "U0BOSS", "--json")[1]) == everything  # asked
    assert json.loads(cli("audit", "--as", "u0ops", "--json")[1]) == everything  # requester
    monkeypatch.setenv("OPSLOOP_ADMINS", "U0ROOT")
    assert json.loads(cli("audit", "--as", "U0ROOT", "--json")[1]) == everything  # admin


def test_show_ends_with_the_runs_trail(cli) -> None:
    run_id = approved_run(cli)
    code, out, _ = cli("show", run_id)
    assert code == 0
    trail = out.split("audit trail:")[1]
    assert trail.index("run.started") < trail.index("interaction.answered")
    assert "U0BOSS" in trail
    shown = json.loads(cli("show", run_id, "--json")[1])
    assert [e["action"] for e in shown["audit"]][-2:] == ["interaction.answered",
                                                         "run.succeeded"]  # fmt: skip
