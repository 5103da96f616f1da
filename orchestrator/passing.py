"""One scheduling pass over a run, committed with retries (scheduler.run_pass decides).

The pass starts from the run's state as this process's last pass left it
(orchestrator/runstate.py) and reads the run again only when the run's version says
that something else changed it, so a pass costs what it changes, not the run's size.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy.engine import Connection

from orchestrator import leases, scheduler
from orchestrator.live import LiveRuns
from orchestrator.runs import ViewCache
from orchestrator.runstate import RunState
from orchestrator.services import Services
from orchestrator.step_limits import PassGrants
from orchestrator.storage_retry import storage_attempts
from storage.engine import write_transaction
from storage.statuses import FINISHED_RUN


def new_thread_id(run_id: str, step_id: str) -> str:
    """A fresh LangGraph thread for one execution of a step: 32 random bits, as uuid4's
    first 8 hex digits were, without a read of os.urandom per step (the generator is
    seeded from it, and again in a forked child)."""
    return f"{run_id}/{step_id}/{random.getrandbits(32):08x}"


def commit_pass(
    services: Services, live: LiveRuns, run_id: str,
    outcomes: list[scheduler.Outcome], inflight_of: Callable[[str], frozenset[str]], free: int,
    grant: Callable[[str, tuple[str, ...]], tuple[str, ...]] | None = None,
) -> scheduler.Pass:  # fmt: skip
    """Make one pass over `run_id` and commit it; what it changed. `grant`: the workers'
    share per workflow (step_limits.py)."""
    engine, now, cache = services.engine, services.clock.now(), live.cache(run_id)
    memory = live.memory
    state = memory.take(run_id)

    def once(given: RunState | None, trial: ViewCache) -> scheduler.Pass:
        with write_transaction(engine) as conn:
            return scheduler.run_pass(
                conn, run_id, services.workflow_of, outcomes, state=given,
                inflight=lambda: inflight_of(run_id),
                free=free, now=now, ownership=leases.ownership(services.replica, now),
                new_thread_id=lambda step_id: new_thread_id(run_id, step_id), cache=trial,
                grant=grant,
            )  # fmt: skip

    kept = None
    try:
        for attempt in storage_attempts():
            with attempt:
                given, state = state, None  # an attempt that fails may have changed it
                # The pass reads rows it wrote itself: the cache takes them only once
                # they are committed, or a rolled-back version could shadow a real one.
                while True:
                    trial = dict(cache)
                    try:
                        done = once(given, trial)
                        break
                    except scheduler.StaleRun:  # rolled back: again, from a fresh read
                        given = None
        cache.update(trial)
        if done.run is not None and done.run.status not in FINISHED_RUN:
            kept = done.state
    finally:
        memory.keep(run_id, kept)
    return done


def pass_within(
    conn: Connection, services: Services, live: LiveRuns, run_id: str, state: RunState,
    inflight_of: Callable[[str], frozenset[str]], free: int, grant: PassGrants,
) -> scheduler.Pass:  # fmt: skip
    """One pass over `run_id` in the caller's transaction, from `state`: the run as that
    transaction read it (the run's row locked) and changed it. The state it leaves is
    kept for the next pass; if the transaction does not commit, the caller forgets it
    and settles `grant` (here if the pass itself fails)."""
    now = services.clock.now()
    try:
        done = scheduler.run_pass(
            conn, run_id, services.workflow_of, (), state=state,
            inflight=lambda: inflight_of(run_id), free=free, now=now,
            ownership=leases.ownership(services.replica, now),
            new_thread_id=lambda step_id: new_thread_id(run_id, step_id), grant=grant,
        )  # fmt: skip
    except BaseException:
        grant.settle((), failed=True)
        raise
    finished = done.run is None or done.run.status in FINISHED_RUN
    live.memory.keep(run_id, None if finished else done.state)
    return done
