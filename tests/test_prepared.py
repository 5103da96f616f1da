"""storage/prepared.py sends the hot UPDATEs as their SQL text: what it stores must be
exactly what SQLAlchemy's own execution stores, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from orchestrator import runs
from orchestrator.workflow.loader import parse_workflow
from storage import prepared
from storage.engine import read_transaction, write_transaction

WF = parse_workflow("name: w\nsteps:\n" + "".join(f"  - id: s{i}\n    shell: ['true']\n"
                                                  for i in range(5)))  # fmt: skip
VALUES = {"status": "succeeded", "error": None, "outputs": {"a": [1, "x", None], "b": 2.5},
          "finished_at": datetime(2026, 12, 6, 17, 40, 14, 15996, tzinfo=UTC),
          "updated_at": datetime(2026, 12, 6, 18, 0, tzinfo=UTC)}  # fmt: skip
UPDATE = sa.update(runs.STEPS).where(
    runs.STEPS.c.run_id == sa.bindparam("k0"), runs.STEPS.c.step_id == sa.bindparam("k1"),
    runs.STEPS.c.status == sa.bindparam("expect"),
).values({**{c: sa.bindparam(f"v_{c}", type_=runs.STEPS.c[c].type) for c in VALUES},
          "version": runs.STEPS.c.version + 1})  # fmt: skip


def _rows(engine: sa.Engine, run_id: str) -> dict[str, tuple]:
    with read_transaction(engine) as conn:
        rows = conn.execute(sa.text("SELECT step_id, status, error, outputs, finished_at, "
                                    "updated_at, version FROM step_run WHERE run_id = :r"),
                            {"r": run_id})  # fmt: skip
        return {r[0]: tuple(r[1:]) for r in rows}


def test_a_prepared_update_stores_what_sqlalchemy_stores(engine: sa.Engine) -> None:
    run_id, now = runs.new_run_id(), datetime.now(UTC)
    with write_transaction(engine) as conn:
        runs.insert_started(conn, WF, run_id, {}, "U0", "cli", None, None, now)

    def params(step_id: str) -> dict:
        return {"k0": run_id, "k1": step_id, "expect": "pending",
                **{f"v_{k}": v for k, v in VALUES.items()}}  # fmt: skip

    with write_transaction(engine) as conn:
        assert conn.execute(UPDATE, params("s0")).rowcount == 1
        assert prepared.execute(conn, UPDATE, params("s1")).rowcount == 1
        assert prepared.execute(conn, UPDATE, [params("s2"), params("s3")]).rowcount == 2
        assert prepared.execute(conn, UPDATE, params("s1")).rowcount == 0  # no longer pending
        bumped = runs.bump_run(conn, run_id)  # RETURNING, through prepared.execute
    rows = _rows(engine, run_id)
    assert rows["s1"] == rows["s2"] == rows["s3"] == rows["s0"]
    assert rows["s4"] != rows["s0"]
    with read_transaction(engine) as conn:
        assert runs.run_version(conn, run_id) == bumped == 1
