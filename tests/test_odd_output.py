"""A step whose output holds NUL characters or undecodable bytes is recorded, on SQLite
and PostgreSQL, and its run goes on (orchestrator/storable.py)."""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.storable import REPLACEMENT, storable
from tests.orchestrators import running

ODD = r"""
name: odd
steps:
  - id: binary
    shell: ["sh", "-c", "printf 'a\\000b\\377c'; printf 'e\\000rr' >&2"]
  - id: after
    needs: [binary]
    python: engine_tasks:ok
"""


def test_nul_and_lone_surrogates_are_replaced_everywhere_in_a_value() -> None:
    value = {"k\x00": ["x\x00y", "bad\udcff", 3, None], "n": 1.5}
    assert storable(value) == {
        f"k{REPLACEMENT}": [f"x{REPLACEMENT}y", f"bad{REPLACEMENT}", 3, None],
        "n": 1.5,
    }


def test_a_step_printing_nul_bytes_is_recorded_and_the_run_goes_on(engine: sa.Engine) -> None:
    with running(engine, ODD) as orch:
        run = orch.wait(orch.start_run("odd", {}, started_by="U0OPS"), 30)
    assert run.status == "succeeded", run.error
    steps = {s.step_id: s for s in run.steps}
    binary = steps["binary"].outputs
    assert binary is not None
    assert binary["stdout"].startswith(f"a{REPLACEMENT}b") and binary["stdout"].endswith("c")
    assert binary["stderr"] == f"e{REPLACEMENT}rr"
    assert steps["after"].status == "succeeded"


LOUD = r"""
name: loud
steps:
  - id: flood
    shell: ["sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo ümlaut-END;
             echo E >&2"]
"""


def test_a_step_printing_megabytes_keeps_a_tail_and_says_how_much_was_cut(
    engine: sa.Engine,
) -> None:
    with running(engine, LOUD) as orch:
        run = orch.wait(orch.start_run("loud", {}, started_by="U0OPS"), 60)
    assert run.status == "succeeded", run.error
    outputs = run.steps[0].outputs
    assert outputs is not None
    stdout = outputs["stdout"]
    assert stdout.startswith("[... 19 MB cut ...]\n") and stdout.endswith("x\nümlaut-END\n")
    assert len(stdout.encode()) <= 4000 + len("[... 19 MB cut ...]\n")
    assert outputs["stderr"] == "E\n"  # nothing cut: no marker


UNSTORABLE = """
name: unstorable
steps:
  - id: nan
    python: engine_tasks:not_a_number
  - id: fine
    python: engine_tasks:ok
  - id: after
    needs: [nan]
    python: engine_tasks:ok
"""


def test_a_result_the_database_refuses_fails_its_step_and_the_run_goes_on(
    engine: sa.Engine,
) -> None:
    with running(engine, UNSTORABLE) as orch:
        run = orch.wait(orch.start_run("unstorable", {}, started_by="U0OPS"), 30)
    steps = {s.step_id: s for s in run.steps}
    assert steps["fine"].status == "succeeded"
    if engine.dialect.name == "sqlite":  # SQLite's JSON text takes NaN: nothing to refuse
        assert run.status == "succeeded"
        return
    assert run.status == "failed"  # before: `running` forever, every pass failing
    assert steps["nan"].status == "failed" and steps["nan"].outputs is None
    assert (steps["nan"].error or "").startswith("the step's result could not be stored (")
    assert steps["after"].status == "skipped"
