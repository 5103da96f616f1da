"""Which version of a workflow a run follows: the one it started with.

A gate may wait for days, and a deploy may restart opsloop meanwhile with edited
workflow files. Editing or deleting a file changes the runs started after it,
never one under way: each run's workflow text is stored once per digest
(`workflow_definition`, written by `Orchestrator.start_run`), and a run whose
digest is not the current file's is read back from there.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from sqlalchemy.engine import Engine

from orchestrator import runs
from orchestrator.errors import UnknownWorkflow
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.loader import parse_workflow
from storage.engine import read_transaction


class WorkflowVersions:
    """The workflows as the files say now, and the older versions runs still follow."""

    def __init__(self, engine: Engine, current: MutableMapping[str, Workflow]) -> None:
        self.engine = engine
        self.current = current  # shared with the caller, who may add to it
        self._older: dict[str, Workflow] = {}  # by digest

    def named(self, name: str) -> Workflow:
        """The current version of `name`; UnknownWorkflow (with a near name) if none."""
        try:
            return self.current[name]
        except KeyError:
            raise UnknownWorkflow(name, self.current) from None

    def of(self, name: str, digest: str) -> Workflow:
        """`name` in the version whose text hashes to `digest`. Runs from before opsloop
        kept definitions (no text stored) follow the current file."""
        now = self.current.get(name)
        if now is not None and (now.digest == digest or not digest):
            return now
        older = self._older.get(digest)
        if older is None:
            with read_transaction(self.engine) as conn:
                text = runs.definition_text(conn, digest)
            if text is None:
                return self.named(name)
            older = self._older[digest] = parse_workflow(text, f"<{name} as its runs started it>")
        return older
