"""A process the crash tests kill with SIGKILL: it drives runs until RUNS of them are done.

    python tests/crash_worker.py DB_URL WORKFLOW_FILE EFFECTS_FILE RUNS

On start it recovers whatever a killed predecessor left unfinished
(`Orchestrator.start()`), then, one run at a time, starts runs of the workflow
and plays the people: it approves gates as UAPPROVER and answers every
recovery question with "retry" as UOPERATOR. Steps append to EFFECTS_FILE
(tests/engine_tasks.py:effect). Exit status 0 once RUNS runs have finished.
"""

from __future__ import annotations

import os
import sys
import time

from orchestrator import runs
from orchestrator.engine import Orchestrator
from orchestrator.loader import load_workflow
from storage.engine import create_engine, read_transaction
from storage.schema import setup

REQUESTER, APPROVER, OPERATOR = "URUNNER", "UAPPROVER", "UOPERATOR"
TIMEOUT_S = 60.0


def answer_pending(orch: Orchestrator) -> None:
    """Approve open gates and retry steps that a crash interrupted."""
    with read_transaction(orch.engine) as conn:
        pending = runs.pending_interactions(conn)
    for row in pending:
        if row["purpose"] == "recovery":
            orch.decide(row["id"], OPERATOR, "retry")
        else:
            orch.decide(row["id"], APPROVER, "approve")


def main(db_url: str, workflow_file: str, effects: str, total: int) -> int:
    os.environ["OPSLOOP_TEST_EFFECTS"] = effects
    engine = create_engine(db_url)
    setup(engine)
    workflow = load_workflow(workflow_file)
    orch = Orchestrator(engine, {workflow.name: workflow}, max_workers=8)
    orch.start()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with read_transaction(engine) as conn:
            unfinished = runs.unfinished_run_ids(conn)
            started = len(runs.list_runs(conn, limit=total + 1))
        if not unfinished:
            if started >= total:
                orch.close()
                return 0
            orch.start_run(workflow.name, {}, started_by=REQUESTER)
            continue
        for run_id in unfinished:
            if orch.wait(run_id, timeout=TIMEOUT_S).status == "waiting":
                answer_pending(orch)
    print(f"crash_worker: runs still unfinished after {TIMEOUT_S} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    url, wf_file, effects_file, count = sys.argv[1:5]
    sys.exit(main(url, wf_file, effects_file, int(count)))
