"""LangGraph checkpoints <-> the rows of opsloop's checkpoint tables.

A checkpoint is stored as a `checkpoint` row (the checkpoint without the channel
values that have a blob row, serialized as (type, bytes); metadata as JSON; the
run id) and one `checkpoint_blob` row per changed channel value. Small primitives
(None, bool, int, float, short strings) stay inline in the checkpoint row: a blob
row would cost more than the value. Pending writes are `checkpoint_write` rows.
This module only converts; `storage.checkpoint_queries` reads and writes the rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

# Strings longer than this go to a blob row, so a big value is stored once, not per checkpoint.
INLINE_STR_MAX = 256

# (thread_id, checkpoint_ns) -> the (channel, version) pairs whose blobs are needed.
WantedBlobs = dict[tuple[str, str], set[tuple[str, str]]]
# (thread_id, checkpoint_ns, channel, version) -> the channel's value.
Blobs = dict[tuple[str, str, str, str], Any]
# (thread_id, checkpoint_ns, checkpoint_id) -> the pending writes (task_id, channel, value).
PendingWrites = dict[tuple[str, str, str], list[tuple[str, str, Any]]]


def is_inline(value: Any) -> bool:
    """True for a value kept in the checkpoint row itself rather than in a blob row."""
    if isinstance(value, str):
        return len(value) <= INLINE_STR_MAX
    return value is None or isinstance(value, bool | int | float)


def checkpoint_config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    """The config that names one checkpoint, as LangGraph passes it around."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def put_rows(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    *,
    inline_all: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The checkpoint row, and the blob rows of the channels named in `new_versions`.
    `inline_all`: every value in the row, no blob row (a thread's last checkpoint, whose
    values no later checkpoint shares)."""
    conf = config["configurable"]
    thread_id = str(conf["thread_id"])
    ns = conf.get("checkpoint_ns", "")
    values = checkpoint["channel_values"]
    inline = {k: v for k, v in values.items() if inline_all or is_inline(v)}
    blobs = [
        {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "channel": channel,
            "version": str(version),
            **dict(zip(("type", "blob"), serde.dumps_typed(values[channel]), strict=True)),
        }
        for channel, version in new_versions.items()
        if channel in values and channel not in inline
    ]
    type_, data = serde.dumps_typed({**checkpoint, "channel_values": inline})
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
    return row, blobs


def write_rows(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> list[dict[str, Any]]:
    """One `checkpoint_write` row per write; special channels take their fixed index."""
    conf = config["configurable"]
    rows = []
    for idx, (channel, value) in enumerate(writes):
        type_, blob = serde.dumps_typed(value)
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
    return rows


def replaces_writes(writes: Sequence[tuple[str, Any]]) -> bool:
    """True when every write is to a special channel (error, interrupt...): those overwrite
    an earlier write at the same index, the others never do."""
    return all(channel in WRITES_IDX_MAP for channel, _ in writes)


def wanted_blobs(rows: Sequence[Any], skeletons: Sequence[Checkpoint]) -> WantedBlobs:
    """The blob rows that the checkpoints (rows, with their deserialized skeletons) name."""
    wanted: WantedBlobs = defaultdict(set)
    for row, skeleton in zip(rows, skeletons, strict=True):
        inline = skeleton["channel_values"]
        wanted[(row.thread_id, row.checkpoint_ns)].update(
            (channel, str(version))
            for channel, version in skeleton["channel_versions"].items()
            if channel not in inline
        )
    return wanted


def checkpoint_tuple(
    row: Any, skeleton: Checkpoint, blobs: Blobs, writes: PendingWrites
) -> CheckpointTuple:
    """A checkpoint row, its skeleton filled with its blobs, and its pending writes."""
    key = (row.thread_id, row.checkpoint_ns)
    values = dict(skeleton["channel_values"])
    for channel, version in skeleton["channel_versions"].items():
        found = blobs.get((*key, channel, str(version)))
        if found is not None and channel not in values:
            values[channel] = found
    skeleton["channel_values"] = values
    return CheckpointTuple(
        config=checkpoint_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
        checkpoint=skeleton,
        metadata=row.metadata,
        parent_config=(
            checkpoint_config(row.thread_id, row.checkpoint_ns, row.parent_checkpoint_id)
            if row.parent_checkpoint_id
            else None
        ),
        pending_writes=writes.get((*key, row.checkpoint_id), []),
    )
