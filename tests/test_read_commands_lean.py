"""`opsloop audit` and `opsloop show` are read-only commands like `runs` (issue 16): they
neither write a database nor pay for LangGraph. Through `opsloop` in-process and in a
real interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bot.cli import main
from storage.types import UtcDateTime

REPO = Path(__file__).resolve().parent.parent


def test_audit_of_a_new_database_refuses_and_writes_nothing(sqlite_url: str, capsys) -> None:
    """A mistyped --database-url must not get an opsloop schema from a command that reads."""
    code = main(["audit", "--database-url", sqlite_url])
    err = capsys.readouterr().err
    assert code == 2 and "no opsloop schema yet" in err and "`opsloop db upgrade`" in err, err
    engine = sa.create_engine(sqlite_url)
    assert sa.inspect(engine).get_table_names() == []  # before: every table, alembic's too
    engine.dispose()


def test_audit_and_show_do_not_import_langgraph(db_url: str, tmp_path: Path) -> None:
    assert main(["db", "upgrade", "--database-url", db_url]) == 0
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(tmp_path)}
    for command in (["audit"], ["audit", "--as", "U0BOB"], ["show", "r-nothere"]):
        probe = (
            f"import sys; from bot.cli import main; code = main({command!r}); "
            "heavy = sorted(m for m in ('langgraph', 'alembic', 'orchestrator.engine')"
            " if m in sys.modules); print(code, heavy, file=sys.stderr)"
        )
        done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        last = done.stderr.strip().splitlines()[-1]
        assert last.endswith(" []"), (command, done.stderr)


def test_report_and_schedules_do_not_import_the_models_or_the_scheduler(
    db_url: str, tmp_path: Path
) -> None:
    """Before: both built the SQLModel models (pydantic) and imported APScheduler, which
    `opsloop runs` does not (bench/cli_startup.py times them)."""
    assert main(["db", "upgrade", "--database-url", db_url]) == 0
    env = {**os.environ, "DATABASE_URL": db_url, "OPSLOOP_WORKFLOWS": str(tmp_path)}
    for command in (["report"], ["report", "--since", "90d", "--json"], ["schedules"],
                    ["schedules", "--json"]):  # fmt: skip
        probe = (
            f"import sys; from bot.cli import main; code = main({command!r}); "
            "heavy = sorted(m for m in ('sqlmodel', 'apscheduler', 'storage.models', "
            "'langgraph', 'alembic', 'orchestrator.engine') if m in sys.modules); "
            "print(code, heavy, file=sys.stderr)"
        )
        done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        last = done.stderr.strip().splitlines()[-1]
        assert last == "0 []", (command, done.stderr)


def test_the_light_tables_of_reports_and_schedules_match_the_models() -> None:
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401  (registers the tables)
    from orchestrator import schedule_list
    from orchestrator.reports import tables

    models = SQLModel.metadata.tables
    light = [tables.RUNS, tables.STEPS, tables.INTERACTIONS, tables.AUDIT, tables.SCHEDULES,
             tables.REPORT_DAY, schedule_list.LISTED]  # fmt: skip
    for table in light:
        model = models[table.name]
        for column in table.c:
            kind = model.c[column.name].type
            kind = getattr(kind, "impl", kind) if not isinstance(kind, UtcDateTime) else kind
            mine = column.type if isinstance(column.type, UtcDateTime) else getattr(
                column.type, "impl", column.type)  # fmt: skip
            assert isinstance(mine, type(kind)) or isinstance(kind, type(mine)), (
                table.name, column.name, mine, kind)  # fmt: skip
