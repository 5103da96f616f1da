"""Audit entries as people read them: one line of detail each, a table for the terminal,
and the one JSON shape `opsloop audit --json` and `opsloop show --json` print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.console import format_table
from orchestrator.audit import AuditRecord

DETAIL_WIDTH = 200  # characters of detail in a table row; --json has it all

# The keys each action's detail is read from, in the order they are shown.
_SHOWN_FIRST = ("answer", "outcome", "attempted", "reason", "comment", "status", "params",
                "front_end", "channel", "schedule", "steps", "to", "error")  # fmt: skip


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def describe(record: AuditRecord) -> str:
    """The entry's detail in one line: `answer=approve comment='lgtm'`, a param diff as
    `replicas: 2 -> 5`."""
    detail = record.detail
    if record.action == "run.params_changed":
        before, after = detail.get("before") or {}, detail.get("after") or {}
        return ", ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in after.items())
    keys = [k for k in _SHOWN_FIRST if k in detail]
    keys += sorted(k for k in detail if k not in keys and k != "step")
    return " ".join(f"{k}={_short(detail[k])}" for k in keys if detail[k] not in (None, "", {}))


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    text = str(value)
    return repr(text) if " " in text else text


def format_audit(records: Sequence[AuditRecord]) -> str:
    """A table, newest last: time, actor, action, run, step, detail."""
    if not records:
        return "no audit entries match"
    rows = [[when(r.at), r.actor, r.action, r.run_id or "", r.step_id or "",
             describe(r)[:DETAIL_WIDTH]] for r in records]  # fmt: skip
    return format_table(["time", "actor", "action", "run", "step", "detail"], rows)


def audit_json(record: AuditRecord) -> dict[str, Any]:
    """One entry as `--json` prints it: stable keys for scripts."""
    return {
        "at": record.at.astimezone(UTC).isoformat(),
        "actor": record.actor,
        "action": record.action,
        "run_id": record.run_id,
        "step_id": record.step_id,
        "interaction_id": record.interaction_id,
        "detail": record.detail,
    }
