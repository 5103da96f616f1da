"""A replica that dies with a question open: another replica applies its deadline on time.

Every `serve` replica watches the questions other processes open (learned from the
audit log within a second), so the one that opened a question can die without its
deadline waiting for the next 30 s sweep (issue 11: deadlines fired up to 20 s late).
Both replicas are real orchestrators on one database, sharing a FakeClock.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from orchestrator.clock import FakeClock
from orchestrator.engine import Orchestrator
from orchestrator.queries import interaction, open_interactions, run_view
from orchestrator.workflow.loader import parse_workflow
from storage.engine import create_engine
from tests.polling import until

TAKEOVER_S = 5.0  # issue 11: a dead replica's gates are taken over within 5 s

GATED = """
name: watched
params:
  key: {type: string, required: true}
steps:
  - id: gate
    approval:
      message: "ship it?"
      deadline: 1h
      on_deadline: reject
  - id: after
    needs: [gate]
    shell: ["true"]
"""


def replica(url: str, clock: FakeClock) -> Orchestrator:
    workflows = {"watched": parse_workflow(GATED)}
    return Orchestrator(create_engine(url), workflows, max_workers=2, clock=clock)


def test_a_dead_replicas_deadline_is_applied_by_another_within_seconds(db_url: str, engine) -> None:
    clock = FakeClock()
    survivor = replica(db_url, clock)
    survivor.start(recover=True, serving=True)  # its first sweep is now; the next in 30 s
    dying = replica(db_url, clock)
    dying.start(recover=False)
    try:
        run_id = dying.start_run("watched", {"key": uuid.uuid4().hex}, started_by="U0OPS")
        until(lambda: open_interactions(engine, run_id), what="the question")
        iid = open_interactions(engine, run_id)[0].id
        dying.close()  # its timers are gone: only the survivor can apply the deadline

        clock.advance(timedelta(hours=1, seconds=1))
        until(lambda: interaction(engine, iid).status == "rejected", timeout=TAKEOVER_S,
              what="the survivor to apply the dead replica's deadline")  # fmt: skip
        until(lambda: run_view(engine, run_id).status == "failed", what="the run to end")
    finally:
        dying.close()
        survivor.close()
