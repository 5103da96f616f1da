"""The SQL of the checkpointer: its tables, its prepared inserts, its reads and the edits
of a thread's history (delete, copy, prune).

Functions take a connection (the saver decides the transaction) and, where values
are (de)serialized, LangGraph's serializer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy.engine import Connection, Engine, Row

from storage.checkpoint_filter import MetadataFilter
from storage.checkpoint_models import CheckpointBlobRow, CheckpointRow, CheckpointWriteRow
from storage.checkpoint_rows import (
    Blobs,
    PendingWrites,
    WantedBlobs,
    checkpoint_tuple,
    wanted_blobs,
)
from storage.engine import dialect_insert

CHECKPOINTS: sa.Table = CheckpointRow.__table__  # type: ignore[attr-defined]
BLOBS: sa.Table = CheckpointBlobRow.__table__  # type: ignore[attr-defined]
WRITES: sa.Table = CheckpointWriteRow.__table__  # type: ignore[attr-defined]

# What reading a checkpoint needs of its row (not run_id).
ROW_COLUMNS = (
    CHECKPOINTS.c.thread_id,
    CHECKPOINTS.c.checkpoint_ns,
    CHECKPOINTS.c.checkpoint_id,
    CHECKPOINTS.c.parent_checkpoint_id,
    CHECKPOINTS.c.type,
    CHECKPOINTS.c.checkpoint,
    CHECKPOINTS.c.metadata,
)
_WRITE_KEY = ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]


@dataclass(frozen=True)
class Inserts:
    """The checkpointer's inserts for one database, built once: building one costs more
    than running it on SQLite."""

    blobs: sa.Insert  # insert-or-ignore: a (channel, version) is written once
    checkpoint: sa.Insert  # upsert
    upsert_writes: sa.Insert  # special channels replace
    insert_writes: sa.Insert  # the others insert-or-ignore

    @classmethod
    def for_engine(cls, engine: Engine) -> Inserts:
        insert = dialect_insert(engine)
        upsert = insert(CHECKPOINTS)
        writes = insert(WRITES)
        return cls(
            blobs=insert(BLOBS).on_conflict_do_nothing(),
            checkpoint=upsert.on_conflict_do_update(
                index_elements=["thread_id", "checkpoint_ns", "checkpoint_id"],
                set_={c: upsert.excluded[c] for c in ("type", "checkpoint", "metadata", "run_id")},
            ),
            upsert_writes=writes.on_conflict_do_update(
                index_elements=_WRITE_KEY,
                set_={c: writes.excluded[c] for c in ("channel", "type", "blob", "task_path")},
            ),
            insert_writes=writes.on_conflict_do_nothing(index_elements=_WRITE_KEY),
        )

    def by_name(self) -> dict[str, sa.Insert]:
        """The statements by the names `storage.sqlite_writer.SqliteWriter` runs them by."""
        return {
            "blobs": self.blobs,
            "checkpoint": self.checkpoint,
            "upsert_writes": self.upsert_writes,
            "insert_writes": self.insert_writes,
        }


# -- reads ------------------------------------------------------------------------


def find_checkpoint(conn: Connection, config: RunnableConfig) -> Row[Any] | None:
    """The row of the checkpoint named by `config`, or of the thread's newest one."""
    conf = config["configurable"]
    stmt = sa.select(*ROW_COLUMNS).where(
        CHECKPOINTS.c.thread_id == str(conf["thread_id"]),
        CHECKPOINTS.c.checkpoint_ns == conf.get("checkpoint_ns", ""),
    )
    if checkpoint_id := get_checkpoint_id(config):
        stmt = stmt.where(CHECKPOINTS.c.checkpoint_id == checkpoint_id)
    else:
        stmt = stmt.order_by(CHECKPOINTS.c.checkpoint_id.desc()).limit(1)
    return conn.execute(stmt).first()


def find_checkpoints(
    conn: Connection,
    config: RunnableConfig | None,
    *,
    filter: Mapping[str, Any],
    before: RunnableConfig | None,
    limit: int | None,
) -> list[Row[Any]]:
    """Checkpoint rows newest first, narrowed by thread, namespace, id, metadata, `before`."""
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
    md_filter = MetadataFilter(filter, conn.dialect.name)
    where.extend(md_filter.clauses(CHECKPOINTS.c.metadata))
    stmt = sa.select(*ROW_COLUMNS).where(*where).order_by(CHECKPOINTS.c.checkpoint_id.desc())
    if limit is not None and md_filter.exact:
        stmt = stmt.limit(limit)
    rows = [r for r in conn.execute(stmt) if md_filter.matches(r.metadata)]
    return rows if limit is None else rows[:limit]


def hydrate(
    conn: Connection, serde: SerializerProtocol, rows: Sequence[Any]
) -> list[CheckpointTuple]:
    """Turn checkpoint rows into tuples, loading their blobs and writes in two queries."""
    skeletons = [serde.loads_typed((r.type, r.checkpoint)) for r in rows]
    blobs = load_blobs(conn, serde, wanted_blobs(rows, skeletons))
    writes = load_writes(conn, serde, rows)
    return [
        checkpoint_tuple(row, skeleton, blobs, writes)
        for row, skeleton in zip(rows, skeletons, strict=True)
    ]


def load_blobs(conn: Connection, serde: SerializerProtocol, wanted: WantedBlobs) -> Blobs:
    """The channel values named by `wanted`, one query per (thread, namespace)."""
    found: Blobs = {}
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
                found[(thread_id, ns, channel, version)] = serde.loads_typed((type_, blob))
    return found


def load_writes(conn: Connection, serde: SerializerProtocol, rows: Iterable[Any]) -> PendingWrites:
    """The pending writes of the checkpoint rows, in LangGraph's order."""
    by_ns: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        by_ns[(row.thread_id, row.checkpoint_ns)].append(row.checkpoint_id)
    writes: PendingWrites = defaultdict(list)
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
                (task_id, channel, serde.loads_typed((type_, blob)))
            )
    return writes


# -- history edits ----------------------------------------------------------------


def delete_thread(conn: Connection, thread_id: str) -> None:
    """Delete every checkpoint, value and write of a thread."""
    for table in (WRITES, BLOBS, CHECKPOINTS):
        conn.execute(sa.delete(table).where(table.c.thread_id == thread_id))


def delete_for_runs(conn: Connection, run_ids: Sequence[str]) -> None:
    """Delete the checkpoints (and their writes) that the given runs wrote; values stay."""
    doomed = sa.select(
        CHECKPOINTS.c.thread_id, CHECKPOINTS.c.checkpoint_ns, CHECKPOINTS.c.checkpoint_id
    ).where(CHECKPOINTS.c.run_id.in_(run_ids))
    conn.execute(
        sa.delete(WRITES).where(
            sa.tuple_(WRITES.c.thread_id, WRITES.c.checkpoint_ns, WRITES.c.checkpoint_id).in_(
                doomed
            )
        )
    )
    conn.execute(sa.delete(CHECKPOINTS).where(CHECKPOINTS.c.run_id.in_(run_ids)))


def copy_thread(conn: Connection, source_thread_id: str, target_thread_id: str) -> None:
    """Copy a thread's whole history under a new thread id; rows already there stay."""
    target = sa.literal(target_thread_id, sa.String)
    insert = dialect_insert(conn)
    for table in (CHECKPOINTS, BLOBS, WRITES):
        others = [c for c in table.c if c.name != "thread_id"]
        select = sa.select(target, *others).where(table.c.thread_id == source_thread_id)
        names = ["thread_id", *(c.name for c in others)]
        conn.execute(insert(table).from_select(names, select).on_conflict_do_nothing())


def keep_latest(conn: Connection, serde: SerializerProtocol, thread_id: str) -> None:
    """Keep only the newest checkpoint of each namespace of a thread, and its values."""
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
    heads: dict[str, Any] = {}
    for row in rows:
        heads.setdefault(row.checkpoint_ns, row)
    for ns, head in heads.items():
        live = serde.loads_typed((head.type, head.checkpoint))["channel_versions"]
        _keep_only(conn, thread_id, ns, head.checkpoint_id, live)


def _keep_only(
    conn: Connection, thread_id: str, ns: str, checkpoint_id: str, live: Mapping[str, Any]
) -> None:
    """Delete a namespace's other checkpoints, their writes and the values `live` lacks."""
    for table in (WRITES, CHECKPOINTS):
        conn.execute(
            sa.delete(table).where(
                table.c.thread_id == thread_id,
                table.c.checkpoint_ns == ns,
                table.c.checkpoint_id != checkpoint_id,
            )
        )
    in_ns = (CHECKPOINTS.c.thread_id == thread_id) & (CHECKPOINTS.c.checkpoint_ns == ns)
    conn.execute(sa.update(CHECKPOINTS).where(in_ns).values(parent_checkpoint_id=None))
    garbage = sa.delete(BLOBS).where(BLOBS.c.thread_id == thread_id, BLOBS.c.checkpoint_ns == ns)
    if live:
        garbage = garbage.where(
            sa.tuple_(BLOBS.c.channel, BLOBS.c.version).not_in(
                [(c, str(v)) for c, v in live.items()]
            )
        )
    conn.execute(garbage)
