"""Two `serve --no-slack` replicas on one PostgreSQL fire a schedule that is due every
minute, and one of them is killed with SIGKILL in between: each minute fires exactly
once. The replicas run on a fast clock (OPSLOOP_CLOCK_SPEED=20: a minute in 3 s)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.schedule_firing import scheduled_run_id
from orchestrator.schedules import list_schedules
from storage.engine import create_engine
from storage.schema import setup
from tests.polling import until

ROOT = Path(__file__).resolve().parent.parent
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


def replica(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--no-slack"], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def fired(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM workflow_run WHERE started_by = 'schedule:tick/every-minute'"
        )).scalar()  # fmt: skip


@pytest.mark.postgres
def test_two_replicas_and_a_sigkill_fire_each_minute_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "tick.yml").write_text(TICK)
    env = {**os.environ, "DATABASE_URL": pg_url, "OPSLOOP_WORKFLOWS": str(flows),
           "OPSLOOP_CLOCK_SPEED": SPEED}  # fmt: skip
    engine = create_engine(pg_url)
    setup(engine)
    first, second = replica(env), replica(env)
    try:
        until(lambda: fired(engine) >= 3, timeout=120, what="three fires by two replicas")
        until(lambda: random.random() < 0.2, timeout=10)  # a random moment for the kill
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        seen = fired(engine)
        until(lambda: fired(engine) >= seen + 3, timeout=120, what="three fires by the survivor")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
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
