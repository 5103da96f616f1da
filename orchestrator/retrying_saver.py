"""The checkpointer with the storage retry policy (orchestrator/storage_retry.py) around
every call a step's graph makes. Its own module: what only reads the database (`opsloop
audit`, `show`) imports the policy without LangGraph."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from sqlalchemy.engine import Engine

from orchestrator.storage_retry import STORAGE_RETRY, StorageRetry
from storage.checkpointer import SQLModelSaver


class RetryingSaver(SQLModelSaver):
    """The checkpointer, with the storage policy around every call a step's graph makes.

    Each of these calls is idempotent (put and put_writes upsert, get_tuple reads),
    so a retry cannot store anything twice.
    """

    def __init__(self, engine: Engine, policy: StorageRetry = STORAGE_RETRY) -> None:
        super().__init__(engine)
        self.policy = policy
        self._new: set[str] = set()
        self._new_guard = threading.Lock()

    def new_thread(self, thread_id: str) -> None:
        """Promise that `thread_id` has no checkpoint yet (the engine just made the id up):
        its first read costs no query, which is most of a short step's database time."""
        with self._new_guard:
            self._new.add(thread_id)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        if "checkpoint_id" not in conf:
            with self._new_guard:
                if conf["thread_id"] in self._new:
                    self._new.discard(conf["thread_id"])
                    return None
        return self.policy.call(super().get_tuple, config)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.policy.call(super().put, config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.policy.call(super().put_writes, config, writes, task_id, task_path)
