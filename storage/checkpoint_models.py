"""LangGraph's checkpoint tables (storage/checkpointer.py reads and writes them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import JSONType


class CheckpointRow(SQLModel, table=True):
    """One LangGraph checkpoint, without the channel values kept in `checkpoint_blob`.

    Text columns are unbounded: LangGraph makes channel names such as
    "join:a+b+...:node" that grow with the graph.
    """

    __tablename__ = "checkpoint"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    checkpoint_id: str = Field(primary_key=True, sa_type=sa.Text)
    parent_checkpoint_id: str | None = Field(default=None, sa_type=sa.Text)
    # The run that wrote it (from metadata), so delete_for_runs is one indexed DELETE.
    run_id: str | None = Field(default=None, index=True, sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    checkpoint: bytes = Field(sa_type=sa.LargeBinary)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column("metadata", JSONType, nullable=False)
    )


class CheckpointBlobRow(SQLModel, table=True):
    """A channel's value at one version; written once, shared by every checkpoint that has it."""

    __tablename__ = "checkpoint_blob"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    channel: str = Field(primary_key=True, sa_type=sa.Text)
    version: str = Field(primary_key=True, sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    blob: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class CheckpointWriteRow(SQLModel, table=True):
    """A pending write of one task against one checkpoint."""

    __tablename__ = "checkpoint_write"
    # SQLite keeps the rows in the primary-key b-tree, not beside a copy of the key.
    __table_args__ = {"sqlite_with_rowid": False}

    thread_id: str = Field(primary_key=True, sa_type=sa.Text)
    checkpoint_ns: str = Field(default="", primary_key=True, sa_type=sa.Text)
    checkpoint_id: str = Field(primary_key=True, sa_type=sa.Text)
    task_id: str = Field(primary_key=True, sa_type=sa.Text)
    idx: int = Field(
        primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False}
    )
    task_path: str = Field(default="", sa_type=sa.Text)
    channel: str = Field(sa_type=sa.Text)
    type: str = Field(sa_type=sa.Text)
    blob: bytes = Field(sa_type=sa.LargeBinary)
