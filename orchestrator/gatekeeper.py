"""Who may start, change and schedule runs: the access policy applied, and every refusal
audited once (the one thing a refusal changes) before it is raised."""

from __future__ import annotations

from typing import Any, NoReturn

from orchestrator import runs
from orchestrator.errors import NotAllowed
from orchestrator.protocol import RunView
from orchestrator.services import Services
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import Workflow
from storage.engine import write_transaction


class Gatekeeper:
    def __init__(self, services: Services) -> None:
        self._services = services

    def check_start(self, by: str, workflow: Workflow, channel: str | None) -> None:
        """NotAllowed (audited) unless `by` may start `workflow` from Slack `channel`."""
        refusal = self._services.access.run_refusal(by, workflow, channel)
        if refusal is not None:
            self.refuse(by, "run", refusal, workflow=workflow.name, channel=channel)

    def check_change(self, run: RunView, workflow: Workflow | None, by: str, what: str) -> None:
        """NotAllowed (audited) unless `by` may `what` (cancel, retry) the run (`workflow`:
        None when the run's definition is gone)."""
        if not self._services.access.may_change(by, run.started_by, workflow, what):
            self.refuse(by, what, f"{by} may not {what} run {run.id}: only {run.started_by}, "
                        f"the people its workflow's access.{what} names, or an admin may",
                        run_id=run.id)  # fmt: skip

    def check_schedules(self, by: str, what: str, schedule_id: str) -> None:
        """NotAllowed (audited) unless `by` may pause and resume schedules."""
        if not self._services.access.may_manage_schedules(by):
            self.refuse(by, what, f"{by} may not manage schedules: only admins "
                        "(OPSLOOP_ADMINS) may", schedule=schedule_id)  # fmt: skip

    def refuse(self, by: str, what: str, message: str, run_id: str | None = None,
               error: NotAllowed | None = None, **detail: Any) -> NoReturn:  # fmt: skip
        """Audit a refusal (the one thing it changes) and raise it (NotAllowed)."""
        now = self._services.clock.now()
        for attempt in storage_attempts():
            with attempt, write_transaction(self._services.engine) as conn:
                runs.audit(conn, by, "access.refused", now=now, run_id=run_id,
                           attempted=what, reason=message, **detail)  # fmt: skip
        raise error or NotAllowed(message)
