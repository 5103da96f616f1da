"""An answer's own writes: the conditional UPDATE that claims its question, and its audit
entry, held as values until they are sent.

`answers.py` decides what an answer writes; this module sends it, as statements compiled
once (storage/prepared.py: SQLAlchemy's per-execution work skipped), or hands their
parts to a caller that sends them with its own in one statement (gate_writes.py: a gate
ended by its answer, on PostgreSQL). Either way the claim is the one condition: the
question still pending at the version that was read, so an answer counts once; the
audit entry is written only with a claim that won.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.interactions import INTERACTIONS
from orchestrator.runs import AUDIT
from storage import prepared
from storage.statuses import InteractionStatus

AUDIT_COLUMNS = ("at", "actor", "action", "run_id", "interaction_id", "detail")


class ClaimLost(Exception):
    """The answer's claim lost (another answer or a deadline got to the question first):
    nothing was written; read the question again."""


@dataclass(frozen=True)
class AnswerWrites:
    """What one answer writes: `values` onto question `iid` if it is still pending at
    `version`, and the audit entry `audit` (the columns of AUDIT_COLUMNS)."""

    iid: str
    version: int
    values: Mapping[str, Any]
    audit: Mapping[str, Any]

    @property
    def columns(self) -> tuple[str, ...]:
        """The question's columns the claim sets (its statement's shape)."""
        return tuple(self.values)

    def params(self) -> dict[str, Any]:
        """The parameters of `claim_update(columns)` and `audit_insert()` together."""
        claim = {f"q_{name}": value for name, value in self.values.items()}
        entry = {f"a_{name}": self.audit[name] for name in AUDIT_COLUMNS}
        return {"q_id": self.iid, "q_version": self.version, **claim, **entry}

    def send(self, conn: Connection) -> bool:
        """Claim the question and, if that won, write the audit entry; True if it won."""
        params = self.params()
        if prepared.execute(conn, claim_update(self.columns), params).rowcount != 1:
            return False
        prepared.execute(conn, audit_insert(), params)
        return True


@functools.cache
def claim_update(columns: tuple[str, ...]) -> sa.Update:
    """UPDATE interaction SET <columns>, version + 1 WHERE pending at the version read:
    built once, sent as it is (storage/prepared.py)."""
    return new_claim_update(columns)


def new_claim_update(columns: tuple[str, ...]) -> sa.Update:
    """`claim_update`, built anew: a statement to build on (a CTE) must not be one that is
    also executed, whose memoized attributes (its exported columns) its copies keep."""
    table = INTERACTIONS
    values: dict[str, Any] = {c: sa.bindparam(f"q_{c}", type_=table.c[c].type) for c in columns}
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("q_id"),
               table.c.status == InteractionStatus.PENDING,
               table.c.version == sa.bindparam("q_version"))
        .values({**values, "version": table.c.version + 1})
    )  # fmt: skip


@functools.cache
def audit_insert() -> sa.Insert:
    """INSERT INTO audit_log: the entry of an answer."""
    return sa.insert(AUDIT).values({c: _audit_param(c) for c in AUDIT_COLUMNS})


def audit_values() -> sa.Select:
    """SELECT the entry's parameters: `INSERT ... SELECT` it FROM a claim that won."""
    return sa.select(*(_audit_param(c) for c in AUDIT_COLUMNS))


def _audit_param(column: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"a_{column}", type_=AUDIT.c[column].type)
