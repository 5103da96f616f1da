"""What every part of the runtime shares: the database, the clock, the workflows, who
to tell, and where LangGraph keeps a step's thread. Built once by the engine facade
(orchestrator/engine.py) and handed to each collaborator at construction."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from orchestrator import queries
from orchestrator.access import AccessPolicy
from orchestrator.clock import Clock
from orchestrator.errors import DefinitionError, UnknownWorkflow
from orchestrator.protocol import Directory, FrontEnd, RunView
from orchestrator.retrying_saver import RetryingSaver
from orchestrator.secrets import Scrubber
from orchestrator.step_env import basic_environment
from orchestrator.step_limits import StepLimits
from orchestrator.stepgraph import StepGraph
from orchestrator.storage_retry import storage_attempts
from orchestrator.versions import WorkflowVersions
from orchestrator.workflow.definitions import Workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    engine: Engine
    clock: Clock
    versions: WorkflowVersions
    front_end: FrontEnd  # guarded: see GuardedFrontEnd
    directory: Directory
    replica: str  # this process, as step leases name it (leases.replica_id)
    saver: RetryingSaver
    graph: StepGraph
    access: AccessPolicy
    # Cuts the bot's own secrets out of what steps report, before it is stored or posted.
    scrubber: Scrubber = field(default_factory=Scrubber)
    limits: StepLimits = field(default_factory=StepLimits)  # default timeout, workflow share
    # The bot's PATH, HOME, LANG... as steps get them, taken once (step_env.py).
    basics: Mapping[str, str] = field(default_factory=lambda: basic_environment(os.environ))

    def workflow_of(self, run: RunView) -> Workflow:
        """The workflow as `run` started with it (its file may have changed since)."""
        return self.versions.of(run.workflow, run.digest)

    def known_workflow_of(self, run: RunView) -> Workflow | None:
        """`workflow_of`, or None when neither its file nor a stored definition this release
        can read is left (a text an older release's language wrote counts as gone)."""
        try:
            return self.workflow_of(run)
        except (UnknownWorkflow, DefinitionError):
            return None

    def view(self, run_id: str) -> RunView:
        """The run as committed now; NotFound for an unknown id."""
        for attempt in storage_attempts():
            with attempt:
                run = queries.run_view(self.engine, run_id)
        return run


_front_end_failures = [0]  # calls of the front end that raised; a metric


def front_end_failures() -> int:
    """How many front-end calls raised in this process (read at scrape time)."""
    return _front_end_failures[0]


class GuardedFrontEnd:
    """The front end as the runtime calls it: a front end that raises is logged, counted
    (`front_end_failures`), and the run goes on (the change it was told about is already
    committed). What Slack missed this way, `serve` brings up to date from the database
    (bot/slack/reconciler.py)."""

    def __init__(self, front_end: FrontEnd) -> None:
        self._front_end = front_end

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._front_end, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception:
                _front_end_failures[0] += 1  # a lost increment under a race is tolerable
                log.exception("front end %s.%s failed", type(self._front_end).__name__, name)
                return None

        return call
