"""Outbox rows that will never be sent: failed at once when no retry can help, the rows
that wait for them failed too, and every one reported to the operator.

Before, a row waiting for a row that failed for good (`after`) waited forever: a
schedule with a wrong `channel:` had its gate messages never posted and never reported,
and its board was retried for an hour first. Now:

- Slack's answers that no retry changes (`channel_not_found`, `not_in_channel`,
  `is_archived`, ...) fail the row at once (`permanent`);
- a row that waits for a failed row fails too, saying which (`cascade`);
- each failed row is reported once: an ERROR log line, an audit entry on its run
  (`slack.message_failed`, shown by `opsloop show`), and the `opsloop_outbox_failed`
  gauge. A reported row's `claimed_by` reads `reported`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from slack_sdk.errors import SlackApiError

from bot.slack.outbox import OUTBOX, Outbox
from orchestrator import runs
from orchestrator.services import front_end_failures
from storage.engine import read_transaction, write_transaction
from storage.statuses import OutboxStatus

log = logging.getLogger(__name__)
REPORTED = "reported"
# Slack's errors that say the message can never be sent as asked.
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks",
    "invalid_blocks_format", "msg_too_long", "no_text", "too_many_attachments",
    "message_not_found", "cant_update_message", "edit_window_closed", "user_not_found",
    "cannot_dm_bot", "restricted_action", "invalid_arguments", "invalid_metadata_format",
})  # fmt: skip


def permanent(exc: BaseException) -> bool:
    """Whether Slack refused for good (a retry would be refused the same way)."""
    if not isinstance(exc, SlackApiError):
        return False
    return str(exc.response.get("error")) in PERMANENT


def cascade(outbox: Outbox) -> int:
    """Fail the rows waiting for a row that failed for good, and theirs; how many."""
    first = OUTBOX.alias("first")
    waiting = (OUTBOX.c.status == OutboxStatus.PENDING, first.c.status == OutboxStatus.FAILED)
    stmt = sa.select(OUTBOX.c.id, first.c.id).join(first, first.c.id == OUTBOX.c.after)
    total = 0
    while True:
        with write_transaction(outbox.engine) as conn:
            stuck = conn.execute(stmt.where(*waiting)).all()
            for key, after in stuck:
                error = f"not sent: it follows {after}, which failed for good"
                conn.execute(
                    sa.update(OUTBOX)
                    .where(OUTBOX.c.id == key, OUTBOX.c.status == OutboxStatus.PENDING)
                    .values(status=OutboxStatus.FAILED, error=error)
                )
        if not stuck:
            return total
        total += len(stuck)


def report(outbox: Outbox) -> int:
    """Fail what waits for failed rows, then report each failed row once; how many."""
    cascade(outbox)
    failed = (OUTBOX.c.status == OutboxStatus.FAILED,
              sa.or_(OUTBOX.c.claimed_by.is_(None), OUTBOX.c.claimed_by != REPORTED))  # fmt: skip
    cols = (OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.channel, OUTBOX.c.run_id, OUTBOX.c.error)
    with read_transaction(outbox.engine) as conn:
        rows = conn.execute(sa.select(*cols).where(*failed)).all()
    now, told = outbox.clock(), 0
    for key, kind, channel, run_id, error in rows:
        with write_transaction(outbox.engine) as conn:
            if not conn.execute(
                sa.update(OUTBOX).where(OUTBOX.c.id == key, *failed).values(claimed_by=REPORTED)
            ).rowcount:
                continue  # another replica reported it, or a new edit revived it
            if run_id is not None:
                runs.audit(conn, runs.SYSTEM, "slack.message_failed", now=now, run_id=run_id,
                           key=key, kind=kind, channel=channel, error=error)  # fmt: skip
        log.error("Slack message %s (%s to %s, run %s) was not sent and will not be: %s",
                  key, kind, channel, run_id, error)  # fmt: skip
        told += 1
    return told


class FailedCollector(Collector):
    """`opsloop_outbox_failed`: chat messages given up on, read when Prometheus scrapes;
    `opsloop_front_end_failures`: calls of the front end that raised (services.py)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        family = GaugeMetricFamily("opsloop_outbox_failed",
                                   "Chat messages that failed for good (see the log)")  # fmt: skip
        family.add_metric([], self._outbox.counts().get(OutboxStatus.FAILED, 0))
        yield family
        raised = CounterMetricFamily("opsloop_front_end_failures",
                                     "Front-end calls that raised (see the log)")  # fmt: skip
        raised.add_metric([], front_end_failures())
        yield raised
