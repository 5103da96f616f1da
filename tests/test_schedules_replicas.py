"""Two `serve --no-slack` replicas on one PostgreSQL fire a schedule that is due every
minute, and one of them is killed with SIGKILL in between: each minute fires exactly
once. The replicas run on a fast clock (OPSLOOP_CLOCK_SPEED=20: a minute in 3 s)."""

from __future__ import annotations

import random
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.schedule_firing import scheduled_run_id
from orchestrator.schedules import list_schedules
from storage.engine import create_engine
from storage.schema import setup
from tests.polling import until
from tests.sample_workflows import workflow_dir
from tests.serve_process import serve_env, serving_headless

SPEED = "20"
TICK = """
name: tick
schedules:
  - id: every-minute
    cron: "* * * * *"
    overlap: allow
    catchup: 10m
steps:
  - id: work
    shell: ["true"]
"""


def fired(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM workflow_run WHERE started_by = 'schedule:tick/every-minute'"
        )).scalar()  # fmt: skip


@pytest.mark.postgres
def test_two_replicas_and_a_sigkill_fire_each_minute_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    env = serve_env(pg_url, workflow_dir(tmp_path, {"tick": TICK}), {"OPSLOOP_CLOCK_SPEED": SPEED})
    engine = create_engine(pg_url)
    setup(engine)
    with (
        serving_headless(env, tmp_path / "1.log") as first,
        serving_headless(env, tmp_path / "2.log") as second,
    ):
        until(lambda: fired(engine) >= 3, timeout=120, what="three fires by two replicas")
        until(lambda: random.random() < 0.2, timeout=10)  # a random moment for the kill
        first.process.send_signal(signal.SIGKILL)
        first.exited(30)
        seen = fired(engine)
        until(lambda: fired(engine) >= seen + 3, timeout=120, what="three fires by the survivor")
        assert second.terminate() == 0, second.output()
    (schedule,) = list_schedules(engine)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.text(
            "SELECT id FROM workflow_run WHERE started_by = 'schedule:tick/every-minute'"
        )).scalars())  # fmt: skip
    assert schedule.missed == 0
    # Every due minute from the first fire to the last has its one run, and no other run.
    due = schedule.last_fired_at
    expected = set()
    while len(expected) < len(ids):
        expected.add(scheduled_run_id(schedule.id, due))
        due -= timedelta(minutes=1)
    assert ids == expected
    engine.dispose()
