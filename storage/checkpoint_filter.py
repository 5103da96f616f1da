"""Metadata filters for `SQLModelSaver.list`: pushed into SQL where exact, checked in Python always.

The meaning is LangGraph's: a checkpoint matches when `metadata.get(key) == value`
for every key of the filter. Top-level scalar values are compared in SQL
(JSONB containment on PostgreSQL, json_extract on SQLite); anything else is
only narrowed in Python, and then LIMIT cannot go to the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


class MetadataFilter:
    """One `filter=` argument, compiled for a dialect."""

    def __init__(self, wanted: Mapping[str, Any], dialect: str) -> None:
        self.wanted = dict(wanted)
        self.dialect = dialect
        self._pushed = {k: v for k, v in self.wanted.items() if self._pushable(k, v)}
        # True when SQL alone decides membership, so LIMIT can be applied there.
        self.exact = len(self._pushed) == len(self.wanted)

    @staticmethod
    def _pushable(key: str, value: Any) -> bool:
        # None matches a missing key too, which neither SQL form expresses exactly.
        return bool(_PLAIN_KEY.match(key)) and isinstance(value, str | int | float | bool)

    def clauses(self, column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        if not self._pushed:
            return []
        if self.dialect == "postgresql":
            return [sa.type_coerce(column, JSONB).contains(self._pushed)]
        return [
            sa.func.json_extract(column, f'$."{key}"') == _sqlite_scalar(value)
            for key, value in self._pushed.items()
        ]

    def matches(self, metadata: Mapping[str, Any] | None) -> bool:
        metadata = metadata or {}
        return all(metadata.get(k) == v for k, v in self.wanted.items())


def _sqlite_scalar(value: Any) -> Any:
    # json_extract gives 1/0 for true/false and plain SQL values for the rest.
    if isinstance(value, bool):
        return int(value)
    return value
