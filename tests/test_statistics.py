"""SQLite's planner statistics are kept by opsloop (storage/statistics.py): without them
a 90-day report took 13.9x a full scan instead of under 1x. `db upgrade` and `serve`'s
start leave them, and they are refreshed when a table grows tenfold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.cli import main
from bot.runtime import database
from bot.settings import Settings
from orchestrator.runs import RUNS, STEPS
from storage.engine import create_engine, write_transaction
from storage.schema import setup
from storage.statistics import keep_statistics, sqlite_upkeep

T0 = datetime(2030, 1, 7, 9, tzinfo=UTC)


def add_runs(engine: sa.Engine, first: int, count: int) -> None:
    runs = [{"id": f"r-{i:08d}", "workflow": "deploy", "definition_hash": "x", "params": {},
             "started_by": "U0DEV", "status": "succeeded", "version": 0,
             "created_at": T0 + timedelta(minutes=i), "updated_at": T0}
            for i in range(first, first + count)]  # fmt: skip
    steps = [{"run_id": r["id"], "step_id": "ship", "workflow": "deploy", "status": "succeeded",
              "attempts": 1, "version": 0, "run_created_at": r["created_at"], "updated_at": T0}
             for r in runs]  # fmt: skip
    with write_transaction(engine) as conn:
        conn.execute(sa.insert(RUNS), runs)
        conn.execute(sa.insert(STEPS), steps)


def analyzed(engine: sa.Engine) -> dict[str, int]:
    """{table: rows when last analyzed} from sqlite_stat1 ({} if none)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("sqlite_stat1"):
            return {}
        rows = conn.execute(sa.text("SELECT tbl, stat FROM sqlite_stat1")).all()
    return {table: int(stat.split()[0]) for table, stat in rows}


def test_db_upgrade_leaves_statistics(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    setup(engine)
    add_runs(engine, 0, 500)
    assert analyzed(engine) == {}  # before: opsloop never analyzed
    assert main(["db", "upgrade", "--database-url", sqlite_url]) == 0
    stats = analyzed(engine)
    assert (stats["workflow_run"], stats["step_run"]) == (500, 500)
    engine.dispose()


def test_serve_start_leaves_statistics_and_refreshes_them_hourly(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = create_engine(sqlite_url)
    setup(engine)
    add_runs(engine, 0, 50)
    with database(Settings(database_url=sqlite_url, workflows_dir=tmp_path), migrate=True):
        pass  # what `serve` opens its database with
    assert analyzed(engine)["workflow_run"] == 50
    jobs = {job: (seconds, fn) for seconds, job, fn in sqlite_upkeep(engine, serving=True)}
    assert jobs["statistics"][0] == 3600.0 and "statistics" not in {
        job for _, job, _ in sqlite_upkeep(engine, serving=False)}  # fmt: skip
    jobs["statistics"][1]()  # the hourly job: nothing grew, nothing analyzed again
    assert keep_statistics(engine) == []
    add_runs(engine, 50, 600)  # 13x as many rows: stale
    assert set(keep_statistics(engine)) >= {"workflow_run", "step_run"}
    assert analyzed(engine)["step_run"] == 650
    engine.dispose()


def test_postgresql_keeps_its_own(db_url: str) -> None:
    engine = create_engine(db_url)
    if engine.dialect.name == "postgresql":
        assert keep_statistics(engine) == [] and sqlite_upkeep(engine, serving=True) == []
    engine.dispose()
