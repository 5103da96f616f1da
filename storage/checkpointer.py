"""A LangGraph checkpointer on opsloop's own engine and SQLModel tables.

Layout (the one PostgresSaver uses, on any SQLAlchemy database):

- `checkpoint`: one row per checkpoint: the checkpoint without its channel
  values, serialized as (type, bytes); metadata as queryable JSON; the run id.
- `checkpoint_blob`: one row per (channel, version). A put stores only the
  channels named in `new_versions`, so a value that did not change is never
  written again. Small primitives (None, bool, int, float, short strings) are
  kept inline in the checkpoint row instead: a blob row would cost more.
- `checkpoint_write`: pending writes, keyed so that a repeated put_writes is
  idempotent (special channels upsert, the others insert-or-ignore).

Every method is safe to call from many threads at once: each call takes its
own pooled connection, and writers to one SQLite file queue on a lock (see
`storage.engine.write_transaction`).

`SQLModelSaver` (here) decides connections and transactions; `storage.checkpoint_rows`
converts between LangGraph's values and rows; `storage.checkpoint_queries` holds the SQL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import Connection, Engine

from storage import checkpoint_queries as queries
from storage import prepared
from storage.checkpoint_queries import BLOBS, CHECKPOINTS, WRITES, Inserts
from storage.checkpoint_rows import checkpoint_config, put_rows, replaces_writes, write_rows
from storage.engine import create_engine, read_transaction, single_reads, write_transaction
from storage.schema import setup as setup_schema
from storage.sqlite_writer import SqliteWriter

__all__ = [
    "BLOBS",
    "CHECKPOINTS",
    "LIST_BATCH",
    "PRUNE_STRATEGIES",
    "WRITES",
    "Head",
    "SQLModelSaver",
]

# A checkpoint to build the next one on: its config, itself without its blob values, metadata.
Head = tuple[RunnableConfig, Checkpoint, CheckpointMetadata]
# Checkpoints hydrated (blobs + writes loaded) per round trip while listing.
LIST_BATCH = 64
PRUNE_STRATEGIES = ("keep_latest", "delete")


class SQLModelSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints in opsloop's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.engine = engine
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(
                f"SQLModelSaver supports SQLite and PostgreSQL, not {engine.dialect.name}"
            )
        self._inserts = Inserts.for_engine(engine)
        self._sqlite = (
            SqliteWriter(engine, self._inserts.by_name())
            if engine.dialect.name == "sqlite"
            else None
        )

    @classmethod
    def from_url(cls, url: str, *, serde: SerializerProtocol | None = None) -> SQLModelSaver:
        """A saver on a new engine for `url`; call `setup()` once before use."""
        return cls(create_engine(url), serde=serde)

    def close(self) -> None:
        """Give back the SQLite writer connection (the engine itself stays the caller's)."""
        if self._sqlite is not None:
            self._sqlite.close()

    def setup(self) -> None:
        """Create or upgrade opsloop's schema, checkpoint tables included. Safe to call twice."""
        setup_schema(self.engine)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """Where put and put_writes write.

        On PostgreSQL they autocommit: each statement is idempotent and the order
        (values before the checkpoint that names them) keeps every prefix
        consistent, so BEGIN/COMMIT would only add round trips. (SQLite writes go
        through `storage.sqlite_writer` instead.)
        """
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    # -- versions -------------------------------------------------------------

    def get_next_version(self, current: str | int | None, channel: None = None) -> str:
        # "<counter>.<random>": ordered by the counter, unique across concurrent writers.
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(current.split(".", 1)[0])
        return f"{counter + 1:032}.{random.random():016}"

    # -- writes ---------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values that changed since its parent."""
        row, blobs = put_rows(self.serde, config, checkpoint, metadata, new_versions)
        # Blobs first: a crash in between leaves unreferenced blobs, never a dangling checkpoint.
        if self._sqlite is not None:
            self._sqlite.write([("blobs", blobs), ("checkpoint", [row])])
        else:
            with self._writing() as conn:
                if blobs:
                    conn.execute(self._inserts.blobs, blobs)
                conn.execute(self._inserts.checkpoint, row)
        return checkpoint_config(row["thread_id"], row["checkpoint_ns"], row["checkpoint_id"])

    def last_row(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        """The row of a thread's last checkpoint, for `put_row` in the caller's transaction:
        it commits (or not) with what else that transaction writes (a gate ended by its
        answer, stepgraph.py). No later checkpoint shares its values, so they stay in its
        row: one write, no blobs."""
        row, _ = put_rows(self.serde, config, checkpoint, metadata, new_versions, inline_all=True)
        return row

    def put_row(self, conn: Connection, row: dict[str, Any]) -> None:
        """Write a checkpoint row (`last_row`'s) in the caller's transaction."""
        prepared.execute(conn, self._inserts.checkpoint, row)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against a checkpoint; repeating the call changes nothing."""
        if not writes:
            return
        rows = write_rows(self.serde, config, writes, task_id, task_path)
        upsert = replaces_writes(writes)
        if self._sqlite is not None:
            self._sqlite.write([("upsert_writes" if upsert else "insert_writes", rows)])
            return
        with self._writing() as conn:
            conn.execute(
                self._inserts.upsert_writes if upsert else self._inserts.insert_writes, rows
            )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, value and write of a thread."""
        with write_transaction(self.engine) as conn:
            queries.delete_thread(conn, str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs wrote.

        Channel values stay: other checkpoints of the thread may share them.
        """
        run_ids = [str(r) for r in run_ids]
        if not run_ids:
            return
        with write_transaction(self.engine) as conn:
            queries.delete_for_runs(conn, run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's whole history (checkpoints, values, writes) under a new thread id."""
        with write_transaction(self.engine) as conn:
            queries.copy_thread(conn, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the newest checkpoint of each namespace (or delete all: "delete")."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}; use one of {PRUNE_STRATEGIES}")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                self.delete_thread(thread_id)
            else:
                with write_transaction(self.engine) as conn:
                    queries.keep_latest(conn, self.serde, thread_id)

    # -- reads ----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by `config`, or the thread's newest one.

        Its three reads need no transaction around them (on PostgreSQL that is two round
        trips less, on a resumed step's path): a checkpoint's row and values never change
        once written, and its values are written before it (`put`)."""
        with single_reads(self.engine) as conn:
            row = queries.find_checkpoint(conn, config)
            if row is None:
                return None
            return queries.hydrate(conn, self.serde, [row])[0]

    def head(self, conn: Connection, thread_id: str) -> Head | None:
        """The thread's newest checkpoint, read on `conn` in one query: its config, the
        checkpoint with only its inline channel values (not its blobs, nor its pending
        writes), its metadata. Enough to build the checkpoint that follows it."""
        row = queries.find_checkpoint(conn, {"configurable": {"thread_id": thread_id}})
        return None if row is None else self.head_of(row)

    def head_of(self, row: Any) -> Head:
        """`head` of a checkpoint row its caller read (the columns of `queries.ROW_COLUMNS`)."""
        skeleton = self.serde.loads_typed((row.type, row.checkpoint))
        config = checkpoint_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id)
        return config, skeleton, row.metadata

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, narrowed by thread, namespace, id, metadata and `before`."""
        with read_transaction(self.engine) as conn:
            rows = queries.find_checkpoints(
                conn, config, filter=filter or {}, before=before, limit=limit
            )
        for start in range(0, len(rows), LIST_BATCH):
            with read_transaction(self.engine) as conn:
                batch = queries.hydrate(conn, self.serde, rows[start : start + LIST_BATCH])
            yield from batch

    # -- async twins (LangGraph's async graphs and the conformance suite use these) ----

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
