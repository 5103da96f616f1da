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
