"""Many runs waiting at a gate, for bench/waiting.py and bench/idle.py.

Not a benchmark itself (`./dev bench` skips files that start with `_`).

One run is started by the real engine and parks at its gate; the others are copies
of its rows (run, steps, interaction, audit, LangGraph checkpoints) with the run id
and the interaction id replaced by new ones of the same length, so they are what the
engine would have written, checkpoints included, at a fraction of the time (the
engine takes 15-45 ms per run here). Each copy's deadline is spread over the next
three days and its next reminder over the next hour, as gates opened over time are.
The step after the gate stamps when it starts (bench/engine_tasks.py: bench/ must be
importable).
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchestrator import interactions
from orchestrator.engine import Orchestrator
from orchestrator.protocol import RunView, SilentFrontEnd
from orchestrator.workflow.loader import parse_workflow
from storage import checkpoint_models, models
from storage.engine import create_engine
from storage.schema import setup
from storage.types import utcnow

WORKFLOW = """name: waiting
steps:
  - id: gate
    approval:
      message: "ok?"
      approvers: {users: [U0001]}
      deadline: 3d
      remind_every: 1h
  - id: after
    needs: [gate]
    python: engine_tasks:noop
"""
MODELS = (models.WorkflowRun, models.StepRun, models.Interaction, models.AuditEntry,
          checkpoint_models.CheckpointRow, checkpoint_models.CheckpointBlobRow,
          checkpoint_models.CheckpointWriteRow)  # fmt: skip
BATCH = 500  # runs copied per transaction


class Finished(SilentFrontEnd):
    """A front end that records each run as it finishes (`runs`), notifying `changed`."""

    def __init__(self) -> None:
        self.runs: dict[str, RunView] = {}
        self.changed = threading.Condition()

    def run_finished(self, run: RunView) -> None:
        with self.changed:
            self.runs[run.id] = run
            self.changed.notify_all()


def populate(url: str, count: int, seed: int = 7, code: Path | None = None) -> list[str]:
    """`count` runs of WORKFLOW waiting at their gate in the database at `url`; their ids.
    `code`: another checkout that will use the database: its schema revision, not ours."""
    engine = create_engine(url)
    try:
        setup(engine, "head" if code is None else head_of(code))
        if count == 0:
            return []
        orch = Orchestrator(engine, {"waiting": parse_workflow(WORKFLOW)}, max_workers=2)
        orch.start(recover=False)
        template = orch.start_run("waiting", {}, started_by="U0900")
        assert orch.wait(template, timeout=60).status == "waiting"
        orch.close()
        ids = [template]
        rng = random.Random(seed)
        copies = [f"r-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}" for _ in range(count - 1)]
        for start in range(0, len(copies), BATCH):
            _copy(engine, template, copies[start : start + BATCH], rng)
            ids.extend(copies[start : start + BATCH])
        return ids
    finally:
        engine.dispose()


def head_of(code: Path) -> str:
    """The newest schema revision of the checkout at `code` (from its migration files)."""
    revisions, parents = set(), set()
    for file in (code / "storage" / "migrations" / "versions").glob("*.py"):
        text = file.read_text()
        revisions.update(re.findall(r'^revision = "(\w+)"', text, re.M))
        parents.update(re.findall(r'^down_revision = "(\w+)"', text, re.M))
    (head,) = revisions - parents
    return head


def _copy(engine: sa.Engine, template: str, new_ids: list[str], rng: random.Random) -> None:
    tables = {model.__tablename__: model.__table__ for model in MODELS}  # type: ignore[attr-defined]
    by_run = {"workflow_run": tables["workflow_run"].c.id == template}  # first: foreign keys
    for name in ("step_run", "interaction", "audit_log"):
        by_run[name] = tables[name].c.run_id == template
    for name in ("checkpoint", "checkpoint_blob", "checkpoint_write"):
        by_run[name] = tables[name].c.thread_id.like(f"{template}/%")
    with engine.begin() as conn:
        rows = {name: [dict(r) for r in conn.execute(sa.select(tables[name]).where(where))
                       .mappings()] for name, where in by_run.items()}  # fmt: skip
        (gate,) = rows["interaction"]
        (thread,) = [r["thread_id"] for r in rows["step_run"] if r["thread_id"]]
        now = utcnow()
        for name, template_rows in rows.items():
            batch = []
            for new in new_ids:
                swap = {template: new, gate["id"]: interactions.interaction_id(
                    thread.replace(template, new), 1)}  # fmt: skip
                for row in template_rows:
                    copy = {k: _swapped(v, swap) for k, v in row.items()
                            if not (k == "id" and name in ("step_run", "audit_log"))
                            and tables[name].c[k].computed is None}  # fmt: skip
                    if name == "interaction":
                        copy["deadline"] = now + timedelta(seconds=rng.uniform(600, 3 * 86400))
                        copy["next_reminder_at"] = now + timedelta(seconds=rng.uniform(0, 3600))
                    batch.append(copy)
            if batch:
                conn.execute(sa.insert(tables[name]), batch)


def _swapped(value: Any, swap: Mapping[str, str]) -> Any:
    """`value` with each old id replaced by its new one (same length: bytes stay valid)."""
    if isinstance(value, str):
        for old, new in swap.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, bytes):
        for old, new in swap.items():
            value = value.replace(old.encode(), new.encode())
        return value
    if isinstance(value, dict | list):
        return json.loads(_swapped(json.dumps(value), swap))
    return value
