"""A step result the database refuses must not stop the pass that records it.

The pass records every finished step and claims what they unblock in one transaction. If
one result cannot be stored (PostgreSQL refuses NaN in JSON, for one), that transaction
failed on every try: the run stayed `running` forever with no error anywhere (issue 16).
So when a pass with results fails, each result is tried alone in a transaction that is
rolled back; those the database refuses become failures of their step, saying why, and
the pass is made again with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from orchestrator import runs
from orchestrator.execution import StepEnd
from orchestrator.scheduler import Outcome
from orchestrator.services import Services
from orchestrator.storable import storable
from storage.engine import write_transaction
from storage.statuses import StepStatus

log = logging.getLogger(__name__)
T = TypeVar("T")


def outcome_of(step_id: str, end: StepEnd, now: datetime) -> Outcome:
    """How a step ended, as the next pass records it with what it unblocks.

    Until that pass commits (a few milliseconds), a crash finds the step `running`.
    A step that ran in its LangGraph thread has its result in its checkpoint, and
    recovery records it from there. A step that ran without a graph counts as cut
    off mid-flight, as a crash a moment earlier would have left it: it runs again if
    it is idempotent, and otherwise a person decides (recovery.py)."""
    outputs, error = storable(end.outputs), storable(end.error)  # NUL wedged PostgreSQL
    return Outcome(step_id, end.status, now, error, outputs)


def commit_outcomes(
    services: Services, run_id: str, outcomes: list[Outcome], commit: Callable[[list[Outcome]], T]
) -> T:
    """`commit(outcomes)`; if it fails and some results cannot be stored, again without them."""
    try:
        return commit(outcomes)
    except Exception as exc:
        if not outcomes:
            raise
        checked = [_storable(services, run_id, o) for o in outcomes]
        if checked == outcomes:  # every result can be stored: the failure is elsewhere
            raise
        log.warning("run %s: a pass failed on a step result the database refuses (%s); "
                    "recording those steps as failed", run_id, exc)  # fmt: skip
        outcomes[:] = checked  # what the caller puts back if this pass fails too
        return commit(checked)


def _storable(services: Services, run_id: str, outcome: Outcome) -> Outcome:
    values = {"status": outcome.status, "error": outcome.error, "outputs": outcome.outputs,
              "finished_at": outcome.at, "updated_at": outcome.at}  # fmt: skip
    try:
        with write_transaction(services.engine) as conn:
            runs.set_steps(conn, run_id, {outcome.step_id: values}, expect=StepStatus.RUNNING)
            raise _Trial  # rolled back: the pass records it
    except _Trial:
        return outcome
    except Exception as exc:
        reason = str(exc).splitlines()[0][:300]
        return replace(outcome, status=StepStatus.FAILED, outputs=None, error=(
            f"the step's result could not be stored ({type(exc).__name__}: {reason}); "
            "its outputs are dropped. Outputs must be JSON the database accepts (no NaN or "
            "Infinity)"))  # fmt: skip


class _Trial(Exception):
    """Rolls a trial write back."""
