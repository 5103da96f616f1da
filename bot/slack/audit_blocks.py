"""`/ops audit RUN` as an ephemeral message: the run's trail, newest last. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.audit_text import describe, when
from bot.slack.text import escaped, pack_lines, section, user_ref
from orchestrator.audit import AuditRecord

SHOWN = 40  # the newest entries an ephemeral message lists; `opsloop audit` has them all
DETAIL_CHARS = 150


def render_audit(run_id: str, records: Sequence[AuditRecord]) -> dict[str, Any]:
    """`text` and `blocks` for the run's trail."""
    shown = records[-SHOWN:]
    count = f"{len(records)} entr{'y' if len(records) == 1 else 'ies'}"
    head = f"*Audit of run `{escaped(run_id, 64)}`*: {count}"
    if len(records) > len(shown):
        head += f"; the newest {len(shown)} below, all of them with `opsloop audit {run_id}`"
    chunks = pack_lines([_line(r) for r in shown], max_chunks=20)
    return {"text": f"Audit of run {run_id}: {count}",
            "blocks": [section(head), *map(section, chunks)]}  # fmt: skip


def _line(record: AuditRecord) -> str:
    step = f" step `{escaped(record.step_id, 64)}`" if record.step_id else ""
    detail = describe(record)
    said = f": {escaped(detail, DETAIL_CHARS)}" if detail else ""
    return f"`{when(record.at)}` {user_ref(record.actor)} *{record.action}*{step}{said}"
