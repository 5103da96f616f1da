"""A run's start: its rows inserted and its first pass made, in one transaction.

The run was inserted (one commit), read back for the front end, then read again and passed
over (a second commit) before its first steps started: on PostgreSQL two durable commits
and four reads before the first step ran, 13 ms of the 57 ms the parallel benchmark took
over its ideal (issue 16). What an insert leaves needs no read: every step pending, the
run running, version 0. The first pass is made from that state in the insert's
transaction, so the first steps' claims commit with the run (durable before they run, as
any claim). If that pass fails, the run is inserted without it and advanced as before.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from orchestrator import runs
from orchestrator.advancing import Advancer, Settle
from orchestrator.live import LiveRuns
from orchestrator.protocol import RunView, StepView
from orchestrator.rate_limit import RateLimit
from orchestrator.runstate import RunState
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Workflow
from storage.engine import write_transaction
from storage.statuses import RunStatus, StepStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRun:
    """A run to insert: what `runs.insert_started` takes."""

    wf: Workflow
    run_id: str
    values: Mapping[str, Any]
    started_by: str
    front_end: str
    channel: str | None
    rerun_of: str | None
    now: datetime

    def view(self) -> RunView:
        """The run as its insert leaves it, as `runs.load_run` would read it."""
        steps = tuple(StepView(step_id=s.id, kind="", status=StepStatus.PENDING)
                      for s in self.wf.steps)  # fmt: skip
        return RunView(
            id=self.run_id, workflow=self.wf.name, status=RunStatus.RUNNING,
            params=json.loads(json.dumps(dict(self.values))), started_by=self.started_by,
            channel=self.channel, steps=steps, digest=self.wf.digest, created_at=self.now,
        )  # fmt: skip

    def insert(self, conn: Connection) -> None:
        runs.insert_started(conn, self.wf, self.run_id, self.values, self.started_by,
                            self.front_end, self.channel, self.rerun_of, self.now)  # fmt: skip


def start(
    services: Services, advancer: Advancer, live: LiveRuns, new: NewRun,
    rate_limit: RateLimit | None,
) -> tuple[RunView, Settle | None]:  # fmt: skip
    """Insert `new` and make its first pass in the same transaction; the run as inserted
    (for the front end's run_started) and the pass's settle, to call once that is told
    (None: the pass failed and the run was inserted without it; advance it). RateLimited
    if `new.started_by` has used up their starts."""

    inserted = new.view()  # immutable: the first pass's state starts from it too

    def first_pass(conn: Connection) -> Settle:
        try:
            state = RunState(new.wf, inserted, 0, frozenset())
            return advancer.pass_within(conn, new.run_id, state)
        except Exception as exc:
            raise _PassFailed(str(exc)) from exc

    try:
        return inserted, _commit(services, live, new, rate_limit, first_pass)
    except _PassFailed as failed:
        log.warning("run %s: its first pass failed in its insert's transaction (%s); "
                    "inserting it alone", new.run_id, failed)  # fmt: skip
    _commit(services, live, new, rate_limit, None)
    return inserted, None


def _commit(
    services: Services, live: LiveRuns, new: NewRun, rate_limit: RateLimit | None,
    first_pass: Callable[[Connection], Settle] | None,
) -> Settle | None:  # fmt: skip
    for attempt in storage_attempts():
        with attempt:
            settle = None
            try:
                with write_transaction(services.engine) as conn:
                    if rate_limit is not None:
                        rate_limit.check(conn, new.started_by, new.now)
                    new.insert(conn)
                    if first_pass is not None:
                        settle = first_pass(conn)
            except BaseException:
                if settle is not None:  # the pass was made; its transaction rolled back
                    live.memory.forget(new.run_id)  # the state it kept was never committed
                    settle(False)
                raise
    return settle


class _PassFailed(Exception):
    """The first pass failed: the run is inserted without it."""
