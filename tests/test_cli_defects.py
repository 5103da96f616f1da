"""Defects found using the CLI as a new user and an SRE would (issue 16), end to end
through `opsloop` with real workflow files, real databases and real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from storage.types import UtcDateTime
from tests.cli_harness import Cli, in_process_cli
from tests.polling import process_alive, until
from tests.sample_workflows import workflow_dir

REPO = Path(__file__).resolve().parent.parent

HANDLED = """
name: handled
params:
  marker: {type: string, required: true}
steps:
  - id: check
    shell: ["test", "-e", "{{ params.marker }}"]
  - id: on_failure
    needs: check
    if: failure()
    shell: ["echo", "handled"]
  - id: cleanup
    needs: check
    if: always()
    shell: ["sh", "-c", "echo cleaned >> {{ params.marker }}.log"]
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    return workflow_dir(tmp_path, {"handled": HANDLED})


@pytest.fixture
def cli(db_url: str, flows: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Cli:
    """`opsloop ARGS...` in-process; returns (exit code, stdout, stderr)."""
    return in_process_cli(db_url, flows, monkeypatch, capsys)


def _steps(out: str) -> dict[str, dict]:
    return {s["id"]: s for s in json.loads(out)["steps"]}


def test_retry_runs_failure_and_always_handlers_again(cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code, out, _ = cli("run", "handled", f"marker={marker}", "--json")
    assert code == 1
    run_id = json.loads(out)["run_id"]
    assert {k: s["status"] for k, s in _steps(out).items()} == {
        "check": "failed", "on_failure": "succeeded", "cleanup": "succeeded"}  # fmt: skip
    marker.touch()
    code, out, _ = cli("retry", run_id, "--json")
    assert code == 0
    # Before: on_failure still showed its old run, and cleanup did not run again.
    assert {k: s["status"] for k, s in _steps(out).items()} == {
        "check": "succeeded", "on_failure": "skipped", "cleanup": "succeeded"}  # fmt: skip
    assert Path(f"{marker}.log").read_text() == "cleaned\ncleaned\n"


GATED = """
name: gated
steps:
  - id: approve
    approval: {message: "Ship it?"}
"""


def test_a_broken_workflow_file_blocks_only_starting_that_workflow(cli, flows: Path) -> None:
    (flows / "gated.yml").write_text(GATED)
    code, out, err = cli("run", "gated", "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    # A colleague's bad edit, to the workflow of the run under way and to another one.
    (flows / "gated.yml").write_text(GATED + "  - id: oops\n    shell: not a list\n")
    (flows / "other.yml").write_text("name: other\nsteps: [")
    code, out, err = cli("cancel", run_id, "--json")
    assert code == 0, err  # before: refused, naming the broken file
    assert json.loads(out)["status"] == "cancelled"
    assert "skipped an invalid workflow file" in err and "other.yml" in err
    code, _, err = cli("run", "gated")
    assert code == 2 and "gated.yml:" in err and "opsloop validate" in err
    code, _, err = cli("run", "other")
    assert code == 2 and "other.yml:" in err
    marker = flows / "m"
    marker.touch()
    assert cli("run", "handled", f"marker={marker}")[0] == 0  # a valid one still starts


def test_read_commands_never_migrate_and_say_how_to(cli, db_url: str) -> None:
    from storage.engine import create_engine
    from storage.schema import current_revision, head_revision, head_revision_fast, setup

    assert head_revision_fast() == head_revision()
    engine = create_engine(db_url)
    setup(engine, "0008")  # a database a release ago, still in use
    for command in (["runs"], ["pending"], ["show", "r-x"], ["run", "handled", "marker=m"]):
        code, _, err = cli(*command)
        assert code == 2, command
        assert f"schema is at revision 0008, this release needs {head_revision()}" in err
        assert "`opsloop db upgrade`" in err
    assert current_revision(engine) == "0008"  # before: `runs` upgraded it (a write lock)
    code, out, _ = cli("db", "upgrade", "--database-url", db_url)  # the flag after `upgrade`
    assert code == 0 and f"schema at revision {head_revision()}" in out
    assert cli("runs")[0] == 0
    engine.dispose()


def test_read_commands_do_not_import_the_engine(db_url: str, tmp_path: Path) -> None:
    probe = (
        "import sys; from bot.cli import main; code = main(['runs']); "
        "heavy = sorted(m for m in ('langgraph', 'alembic', 'apscheduler', 'orchestrator.engine', "
        "'sqlmodel', 'storage.models')"
        " if m in sys.modules); print(code, heavy, file=sys.stderr)"
    )
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(tmp_path)}
    assert main(["db", "upgrade", "--database-url", db_url]) == 0
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr


CHATTY = "name: chatty\nsteps:\n" + "".join(
    f"  - id: s{i}\n    shell: [echo, '{i}']\n" + (f"    needs: s{i - 1}\n" if i else "")
    for i in range(8)
)


def test_a_closed_pipe_ends_the_output_quietly(db_url: str, flows: Path) -> None:
    (flows / "chatty.yml").write_text(CHATTY)
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows)}
    opsloop = f"{sys.executable} -m bot.cli"
    done = subprocess.run(["sh", "-c", f"{opsloop} run chatty | head -1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.startswith("run r-")
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    listed = subprocess.run([sys.executable, "-m", "bot.cli", "runs", "--json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(listed.stdout)[0]["status"] == "succeeded"  # the run went on to its end


FORM = """
name: form
steps:
  - id: details
    input:
      message: "Details?"
      fields:
        ticket: {type: text, required: true}
        minutes: {type: number}
        risk: {type: choice, choices: [low, high], required: true}
"""


def test_the_input_hint_names_the_fields_and_choices(cli, flows: Path) -> None:
    (flows / "form.yml").write_text(FORM)
    code, out, _ = cli("run", "form", "--no-prompt")
    assert code == 0
    assert "ticket=TEXT [minutes=NUMBER] risk=low|high --as USER" in out  # was FIELD=VALUE ...


SLOW = """
name: slow
params:
  dir: {type: string, required: true}
steps:
  - id: long
    idempotent: true
    shell: ["sh", "-c", "test -e {{ params.dir }}/again && exit 0; touch {{ params.dir }}/again;
             echo $$ > {{ params.dir }}/pid; exec sleep 600"]
  - id: after
    needs: long
    shell: ["true"]
"""


def _opsloop(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kw)  # fmt: skip


def test_ctrl_c_says_what_runs_kills_it_and_resume_continues(
    db_url: str, flows: Path, tmp_path: Path
) -> None:
    (flows / "slow.yml").write_text(SLOW)
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows)}
    cli = _opsloop(["run", "slow", f"dir={tmp_path}", "--no-prompt"], env)
    # The CLI starts as a new process (imports, schema, then the step): 8-10 s on a loaded
    # machine here; 60 s, the usual deadline for a process start.
    pid = int(until(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(),
                    timeout=60, what="the step to write its pid"))  # fmt: skip
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=60)  # before: went on until the step ended (600 s)
    assert cli.returncode == 130, err
    assert "stopping: long of run r-" in err and "Ctrl-C again to force" in err
    assert "stopped mid-flight" in err and "`opsloop resume` continues" in err
    until(lambda: not process_alive(pid), timeout=30, what="the step's process to be killed")
    resumed = _opsloop(["resume", "--json"], env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert [r["status"] for r in json.loads(out)] == ["succeeded"]  # long ran again, then after


def test_ctrl_c_at_a_prompt_does_not_send_you_to_resume(db_url: str, flows: Path) -> None:
    (flows / "gated.yml").write_text(GATED)
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(flows)}
    cli = _opsloop(["run", "gated", "--prompt"], env, stdin=subprocess.PIPE)
    until(lambda: _waits(db_url), timeout=60, what="the run to wait at its gate")  # a new process
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130
    assert "no step was running" in err and "opsloop resume" not in err, err


def _waits(db_url: str) -> bool:
    from storage.engine import create_engine

    engine = create_engine(db_url)
    try:
        from orchestrator.queries import recent_runs

        return [r.status for r in recent_runs(engine)] == ["waiting"]
    except Exception:
        return False
    finally:
        engine.dispose()


def test_json_objects_have_one_shape_across_commands(cli, flows: Path) -> None:
    (flows / "gated.yml").write_text(GATED)
    run = json.loads(cli("run", "gated", "--json")[1])
    [question] = json.loads(cli("pending", "--json")[1])
    assert question == run["pending"][0] and question["run_id"] == run["run_id"]  # was absent
    [listed] = json.loads(cli("runs", "--json")[1])
    shared = ("run_id", "workflow", "status", "started_by")
    assert {k: listed[k] for k in shared} == {k: run[k] for k in shared}  # runs said "id"
    shown = json.loads(cli("show", run["run_id"], "--json")[1])
    assert shown["steps"][0]["started_at"].endswith("+00:00")
    assert listed["created_at"].endswith("+00:00") and "T" in listed["created_at"]


TASKS = """
name: tasks
steps:
  - id: fine
    python: engine_tasks:ok
  - id: no_module
    python: nowhere_to_be_found:run
  - id: no_function
    python: engine_tasks:not_there
"""


def test_validate_checks_that_python_tasks_can_be_loaded(cli, flows: Path) -> None:
    (flows / "tasks.yml").write_text(TASKS)
    code, out, _ = cli("validate", str(flows))
    assert code == 2  # before: ok, and the steps failed at run time
    lines = out.splitlines()
    assert any(line.startswith(f"{flows / 'tasks.yml'}:6: step `no_module`: cannot load task "
                               "nowhere_to_be_found:run") for line in lines), out  # fmt: skip
    assert "PYTHONPATH" in out
    assert any(":8: step `no_function`" in line and "not_there" in line for line in lines)
    assert "`fine`" not in out


def test_the_readmes_groups_example_can_be_used() -> None:
    import re

    from orchestrator.protocol import StaticDirectory

    readme = (REPO / "README.md").read_text()
    example = re.search(r"`OPSLOOP_GROUPS` \| [^`]*`([^`]+)`", readme)
    assert example is not None
    directory = StaticDirectory.parse(example.group(1))
    assert directory.members("S0ONCALL")  # a gate's `groups: [S0ONCALL]` finds its members


NOBODY = """
name: nobody
steps:
  - id: approve
    approval:
      message: "Ship?"
      approvers: {groups: [S0EMPTY]}
      deadline: 2h
"""


def test_a_gate_only_an_empty_group_may_answer_says_so_when_it_opens(cli, flows: Path) -> None:
    (flows / "nobody.yml").write_text(NOBODY)
    code, _, err = cli("run", "nobody", "--no-prompt")
    assert code == 0
    assert "step approve asks group(s) S0EMPTY, which have no known members" in err, err
    assert "before its deadline (" in err and "OPSLOOP_ADMINS" in err


PICK = """
name: pick
steps:
  - id: rollout
    decision:
      message: "How?"
      options: [canary, full, rollback]
"""


def test_a_mistyped_option_gets_a_did_you_mean(cli, flows: Path) -> None:
    (flows / "pick.yml").write_text(PICK)
    [question] = json.loads(cli("run", "pick", "--json")[1])["pending"]
    for typed, meant in (("canery", "canary"), ("Full", "full")):
        code, _, err = cli("decide", question["id"], typed)
        assert code == 2 and f"did you mean {meant!r}?" in err, err
        assert "the options: canary, full, rollback" in err
    assert cli("decide", question["id"], "canary")[0] == 0


PLANNED = """
name: planned
params:
  env: {type: choice, choices: [staging, prod], required: true}
  replicas: {type: int, default: 2}
steps:
  - id: build
    shell: ["true"]
  - id: approve
    needs: build
    if: "params.env == 'prod'"
    approval:
      message: "Ship?"
      approvers: {users: [U0BOSS]}
  - id: notify
    needs: approve
    shell: ["true"]
  - id: probe
    needs: build
    shell: ["true"]
  - id: scale
    needs: probe
    if: "steps.probe.outputs.exit_code == 0"
    shell: ["true"]
  - id: on_failure
    needs: [notify, scale]
    if: failure()
    shell: ["true"]
"""


def test_plan_with_params_is_a_dry_run(cli, flows: Path, db_url: str) -> None:
    (flows / "planned.yml").write_text(PLANNED)
    code, out, _ = cli("plan", "planned", "env=staging")
    assert code == 0
    dry = out.split("(nothing was started):\n", 1)[1].splitlines()
    fate = {line.split()[0]: line.split("] ", 1)[1] for line in dry}
    assert fate == {
        "build": "runs",
        "approve": "skipped: `if: params.env == 'prod'` is false with these params",
        "notify": "skipped: approve is skipped",
        "probe": "runs",
        "scale": "maybe: `if: steps.probe.outputs.exit_code == 0` reads probe: decided when it "
                 "finishes",
        "on_failure": "maybe: after scale, decided at run time",
    }  # fmt: skip
    code, out, _ = cli("plan", "planned", "env=prod", "replicas=3")
    assert "approve     [approval] waits for U0BOSS" in out and "notify      [shell] runs" in out
    assert cli("runs", "--json")[0] == 2  # no schema: the plans did not touch the database
    # Params are checked as a run checks them.
    assert cli("plan", "planned", "env=qa")[2] == cli("run", "planned", "env=qa")[2] != ""
    code, out, _ = cli("plan", "planned")
    assert code == 0 and "give key=value params" in out


def test_the_run_lists_light_tables_match_the_models() -> None:
    from orchestrator import interactions, run_list, runs

    for light, model in ((run_list.RUNS, runs.RUNS),
                         (run_list.INTERACTIONS, interactions.INTERACTIONS)):  # fmt: skip
        assert light.name == model.name
        for column in light.c:
            kind = model.c[column.name].type  # UtcDateTime converts: it must be the same type
            text = isinstance(getattr(kind, "impl", kind), sa.String)
            same = type(column.type) is type(kind) if isinstance(kind, UtcDateTime) else text
            assert same, column.name
