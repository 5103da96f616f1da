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
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import Connection, Engine

from storage.checkpoint_filter import MetadataFilter
from storage.engine import create_engine, dialect_insert, read_transaction, write_transaction
from storage.models import CheckpointBlobRow, CheckpointRow, CheckpointWriteRow
from storage.sqlite_writer import SqliteWriter

CHECKPOINTS: sa.Table = CheckpointRow.__table__  # type: ignore[attr-defined]
BLOBS: sa.Table = CheckpointBlobRow.__table__  # type: ignore[attr-defined]
WRITES: sa.Table = CheckpointWriteRow.__table__  # type: ignore[attr-defined]

# Strings longer than this go to a blob row, so a big value is stored once, not per checkpoint.
INLINE_STR_MAX = 256
# Checkpoints hydrated (blobs + writes loaded) per round trip while listing.
LIST_BATCH = 64
PRUNE_STRATEGIES = ("keep_latest", "delete")

_ROW_COLUMNS = (
    CHECKPOINTS.c.thread_id,
    CHECKPOINTS.c.checkpoint_ns,
    CHECKPOINTS.c.checkpoint_id,
    CHECKPOINTS.c.parent_checkpoint_id,
    CHECKPOINTS.c.type,
    CHECKPOINTS.c.checkpoint,
    CHECKPOINTS.c.metadata,
)


def _inline(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= INLINE_STR_MAX
    return value is None or isinstance(value, bool | int | float)


class SQLModelSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints in opsloop's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.engine = engine
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(
                f"SQLModelSaver supports SQLite and PostgreSQL, not {engine.dialect.name}"
            )
        self._insert = dialect_insert(engine)
        # Statements are built once: building one costs more than running it on SQLite.
        self._put_blobs = self._insert(BLOBS).on_conflict_do_nothing()
        upsert = self._insert(CHECKPOINTS)
        self._put_checkpoint = upsert.on_conflict_do_update(
            index_elements=["thread_id", "checkpoint_ns", "checkpoint_id"],
            set_={c: upsert.excluded[c] for c in ("type", "checkpoint", "metadata", "run_id")},
        )
        keys = ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
        writes = self._insert(WRITES)
        self._upsert_writes = writes.on_conflict_do_update(
            index_elements=keys,
            set_={c: writes.excluded[c] for c in ("channel", "type", "blob", "task_path")},
        )
        self._insert_writes = writes.on_conflict_do_nothing(index_elements=keys)
        self._sqlite = (
            SqliteWriter(
                engine,
                {
                    "blobs": self._put_blobs,
                    "checkpoint": self._put_checkpoint,
                    "upsert_writes": self._upsert_writes,
                    "insert_writes": self._insert_writes,
                },
            )
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
        from storage.schema import setup

        setup(self.engine)

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
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        values = checkpoint["channel_values"]
        inline = {k: v for k, v in values.items() if _inline(v)}
        blobs = [
            {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "channel": channel,
                "version": str(version),
                **dict(zip(("type", "blob"), self.serde.dumps_typed(values[channel]), strict=True)),
            }
            for channel, version in new_versions.items()
            if channel in values and channel not in inline
        ]
        type_, data = self.serde.dumps_typed({**checkpoint, "channel_values": inline})
        md = get_serializable_checkpoint_metadata(config, metadata)
        run_id = md.get("run_id")
        row = {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": conf.get("checkpoint_id"),
            "run_id": str(run_id) if run_id is not None else None,
            "type": type_,
            "checkpoint": data,
            "metadata": md,
        }
        # Blobs first: a crash in between leaves unreferenced blobs, never a dangling checkpoint.
        if self._sqlite is not None:
            self._sqlite.write([("blobs", blobs), ("checkpoint", [row])])
            return _config(thread_id, ns, checkpoint["id"])
        with self._writing() as conn:
            if blobs:
                conn.execute(self._put_blobs, blobs)
            conn.execute(self._put_checkpoint, row)
        return _config(thread_id, ns, checkpoint["id"])

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
        conf = config["configurable"]
        rows = []
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            rows.append(
                {
                    "thread_id": str(conf["thread_id"]),
                    "checkpoint_ns": conf.get("checkpoint_ns", ""),
                    "checkpoint_id": conf["checkpoint_id"],
                    "task_id": task_id,
                    "idx": WRITES_IDX_MAP.get(channel, idx),
                    "task_path": task_path,
                    "channel": channel,
                    "type": type_,
                    "blob": blob,
                }
            )
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        if self._sqlite is not None:
            self._sqlite.write([("upsert_writes" if special else "insert_writes", rows)])
            return
        with self._writing() as conn:
            conn.execute(self._upsert_writes if special else self._insert_writes, rows)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, value and write of a thread."""
        with write_transaction(self.engine) as conn:
            for table in (WRITES, BLOBS, CHECKPOINTS):
                conn.execute(sa.delete(table).where(table.c.thread_id == str(thread_id)))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs wrote.

        Channel values stay: other checkpoints of the thread may share them.
        """
        run_ids = [str(r) for r in run_ids]
        if not run_ids:
            return
        doomed = sa.select(
            CHECKPOINTS.c.thread_id, CHECKPOINTS.c.checkpoint_ns, CHECKPOINTS.c.checkpoint_id
        ).where(CHECKPOINTS.c.run_id.in_(run_ids))
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.delete(WRITES).where(
                    sa.tuple_(
                        WRITES.c.thread_id, WRITES.c.checkpoint_ns, WRITES.c.checkpoint_id
                    ).in_(doomed)
                )
            )
            conn.execute(sa.delete(CHECKPOINTS).where(CHECKPOINTS.c.run_id.in_(run_ids)))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's whole history (checkpoints, values, writes) under a new thread id."""
        target = sa.literal(str(target_thread_id), sa.String)
        with write_transaction(self.engine) as conn:
            for table in (CHECKPOINTS, BLOBS, WRITES):
                others = [c for c in table.c if c.name != "thread_id"]
                select = sa.select(target, *others).where(
                    table.c.thread_id == str(source_thread_id)
                )
                names = ["thread_id", *(c.name for c in others)]
                conn.execute(
                    self._insert(table).from_select(names, select).on_conflict_do_nothing()
                )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the newest checkpoint of each namespace (or delete all: "delete")."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}; use one of {PRUNE_STRATEGIES}")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                self.delete_thread(thread_id)
            else:
                self._keep_latest(thread_id)

    def _keep_latest(self, thread_id: str) -> None:
        with write_transaction(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    CHECKPOINTS.c.checkpoint_ns,
                    CHECKPOINTS.c.checkpoint_id,
                    CHECKPOINTS.c.type,
                    CHECKPOINTS.c.checkpoint,
                )
                .where(CHECKPOINTS.c.thread_id == thread_id)
                .order_by(CHECKPOINTS.c.checkpoint_ns, CHECKPOINTS.c.checkpoint_id.desc())
            ).all()
            kept: dict[str, Any] = {}
            for row in rows:
                kept.setdefault(row.checkpoint_ns, row)
            for ns, head in kept.items():
                live = self.serde.loads_typed((head.type, head.checkpoint))["channel_versions"]
                in_ns = (CHECKPOINTS.c.thread_id == thread_id) & (CHECKPOINTS.c.checkpoint_ns == ns)
                for table in (WRITES, CHECKPOINTS):
                    conn.execute(
                        sa.delete(table).where(
                            table.c.thread_id == thread_id,
                            table.c.checkpoint_ns == ns,
                            table.c.checkpoint_id != head.checkpoint_id,
                        )
                    )
                conn.execute(sa.update(CHECKPOINTS).where(in_ns).values(parent_checkpoint_id=None))
                garbage = sa.delete(BLOBS).where(
                    BLOBS.c.thread_id == thread_id, BLOBS.c.checkpoint_ns == ns
                )
                if live:
                    garbage = garbage.where(
                        sa.tuple_(BLOBS.c.channel, BLOBS.c.version).not_in(
                            [(c, str(v)) for c, v in live.items()]
                        )
                    )
                conn.execute(garbage)

    # -- reads ----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by `config`, or the thread's newest one."""
        conf = config["configurable"]
        stmt = sa.select(*_ROW_COLUMNS).where(
            CHECKPOINTS.c.thread_id == str(conf["thread_id"]),
            CHECKPOINTS.c.checkpoint_ns == conf.get("checkpoint_ns", ""),
        )
        if checkpoint_id := get_checkpoint_id(config):
            stmt = stmt.where(CHECKPOINTS.c.checkpoint_id == checkpoint_id)
        else:
            stmt = stmt.order_by(CHECKPOINTS.c.checkpoint_id.desc()).limit(1)
        with read_transaction(self.engine) as conn:
            row = conn.execute(stmt).first()
            if row is None:
                return None
            return self._hydrate(conn, [row])[0]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, narrowed by thread, namespace, id, metadata and `before`."""
        where = []
        if config is not None:
            conf = config["configurable"]
            where.append(CHECKPOINTS.c.thread_id == str(conf["thread_id"]))
            if (ns := conf.get("checkpoint_ns")) is not None:
                where.append(CHECKPOINTS.c.checkpoint_ns == ns)
            if checkpoint_id := get_checkpoint_id(config):
                where.append(CHECKPOINTS.c.checkpoint_id == checkpoint_id)
        if before is not None and (before_id := get_checkpoint_id(before)):
            where.append(CHECKPOINTS.c.checkpoint_id < before_id)
        md_filter = MetadataFilter(filter or {}, self.engine.dialect.name)
        where.extend(md_filter.clauses(CHECKPOINTS.c.metadata))
        stmt = sa.select(*_ROW_COLUMNS).where(*where).order_by(CHECKPOINTS.c.checkpoint_id.desc())
        if limit is not None and md_filter.exact:
            stmt = stmt.limit(limit)
        with read_transaction(self.engine) as conn:
            rows = [r for r in conn.execute(stmt) if md_filter.matches(r.metadata)]
        if limit is not None:
            rows = rows[:limit]
        for start in range(0, len(rows), LIST_BATCH):
            with read_transaction(self.engine) as conn:
                batch = self._hydrate(conn, rows[start : start + LIST_BATCH])
            yield from batch

    def _hydrate(self, conn: Connection, rows: Sequence[Any]) -> list[CheckpointTuple]:
        """Turn checkpoint rows into tuples, loading their blobs and writes in two queries."""
        skeletons = [self.serde.loads_typed((r.type, r.checkpoint)) for r in rows]
        wanted: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        for row, skeleton in zip(rows, skeletons, strict=True):
            inline = skeleton["channel_values"]
            wanted[(row.thread_id, row.checkpoint_ns)].update(
                (channel, str(version))
                for channel, version in skeleton["channel_versions"].items()
                if channel not in inline
            )
        blobs = self._load_blobs(conn, wanted)
        writes = self._load_writes(conn, rows)
        tuples = []
        for row, skeleton in zip(rows, skeletons, strict=True):
            key = (row.thread_id, row.checkpoint_ns)
            values = dict(skeleton["channel_values"])
            for channel, version in skeleton["channel_versions"].items():
                found = blobs.get((*key, channel, str(version)))
                if found is not None and channel not in values:
                    values[channel] = found
            skeleton["channel_values"] = values
            tuples.append(
                CheckpointTuple(
                    config=_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
                    checkpoint=skeleton,
                    metadata=row.metadata,
                    parent_config=(
                        _config(row.thread_id, row.checkpoint_ns, row.parent_checkpoint_id)
                        if row.parent_checkpoint_id
                        else None
                    ),
                    pending_writes=writes.get((*key, row.checkpoint_id), []),
                )
            )
        return tuples

    def _load_blobs(
        self, conn: Connection, wanted: dict[tuple[str, str], set[tuple[str, str]]]
    ) -> dict[tuple[str, str, str, str], Any]:
        found: dict[tuple[str, str, str, str], Any] = {}
        for (thread_id, ns), pairs in wanted.items():
            if not pairs:
                continue
            result = conn.execute(
                sa.select(BLOBS.c.channel, BLOBS.c.version, BLOBS.c.type, BLOBS.c.blob).where(
                    BLOBS.c.thread_id == thread_id,
                    BLOBS.c.checkpoint_ns == ns,
                    sa.tuple_(BLOBS.c.channel, BLOBS.c.version).in_(sorted(pairs)),
                )
            )
            for channel, version, type_, blob in result:
                if type_ != "empty":
                    found[(thread_id, ns, channel, version)] = self.serde.loads_typed((type_, blob))
        return found

    def _load_writes(
        self, conn: Connection, rows: Iterable[Any]
    ) -> dict[tuple[str, str, str], list[tuple[str, str, Any]]]:
        by_ns: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in rows:
            by_ns[(row.thread_id, row.checkpoint_ns)].append(row.checkpoint_id)
        writes: dict[tuple[str, str, str], list[tuple[str, str, Any]]] = defaultdict(list)
        for (thread_id, ns), ids in by_ns.items():
            result = conn.execute(
                sa.select(
                    WRITES.c.checkpoint_id,
                    WRITES.c.task_id,
                    WRITES.c.channel,
                    WRITES.c.type,
                    WRITES.c.blob,
                )
                .where(
                    WRITES.c.thread_id == thread_id,
                    WRITES.c.checkpoint_ns == ns,
                    WRITES.c.checkpoint_id.in_(ids),
                )
                .order_by(WRITES.c.task_path, WRITES.c.task_id, WRITES.c.idx)
            )
            for checkpoint_id, task_id, channel, type_, blob in result:
                writes[(thread_id, ns, checkpoint_id)].append(
                    (task_id, channel, self.serde.loads_typed((type_, blob)))
                )
        return writes

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


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }
