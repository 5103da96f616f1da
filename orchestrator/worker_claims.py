"""A worker's claim of the step a pass queued for it: pending -> running, committed
before the step runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator import leases, runs, scheduler
from orchestrator.protocol import RunView
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Step
from storage.engine import single_write, write_transaction
from storage.statuses import RunStatus, StepStatus


def claim_queued(
    services: Services, run: RunView, step: Step, thread_id: str, now: datetime
) -> tuple[bool, dict[str, Any]]:
    """Claim `step` for this process; (won, the claimed row's values). Lost if it was
    cancelled meanwhile or another replica started it."""
    ownership = leases.ownership(services.replica, now)
    claim = scheduler.claim_values(step, thread_id, now, ownership)
    won = False
    # A run its pass left running needs one statement, which on PostgreSQL commits itself:
    # no BEGIN and COMMIT round trips for each step a worker starts.
    one = run.status == RunStatus.RUNNING
    for attempt in storage_attempts():
        with attempt, (single_write if one else write_transaction)(services.engine) as conn:
            # No version raised (workers would queue behind passes on the run row).
            # Another replica's kept state (runstate.py) may still have the step pending
            # and ready, as it was in the moment after our pass queued it; its next pass
            # can (1) claim it: that UPDATE expects `pending` and loses, and that pass
            # drops its state; (2) skip or fail it: not on the same inputs (an `if:`
            # reads params and upstream steps, final when we decided), and a close that
            # loses reads again (scheduler._close); (3) count it as not running and start
            # one step past `max_parallel`, which it could do in the moment before this
            # claim as well: across replicas, max_parallel holds per pass, not exactly
            # (docs/workflows.md).
            won = runs.set_step(conn, run.id, step.id, expect=[StepStatus.PENDING],
                                signal=False, **claim)  # fmt: skip
            # A run its pass left running stays so (the pass counted this step as
            # running): one round trip less per queued step.
            if won and not one:
                runs.set_run(conn, run.id, expect=[RunStatus.WAITING],
                             status=RunStatus.RUNNING, updated_at=now)  # fmt: skip
    return won, claim
