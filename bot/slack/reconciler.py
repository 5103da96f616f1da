"""Slack brought up to date from the database, whoever changed it.

The front end (frontend.py) queues the messages for changes this process makes. Changes
made anywhere else reach Slack through here: a run started by `opsloop run` (a process
with no Slack token), an answer given with `opsloop decide`, a schedule fired or a
deadline applied by another replica, a question asked by `opsloop resume`. The
reconciler is told by the orchestrator's one reader of the audit log (orchestrator/
changes.py: one indexed query per poll, shared with the question watch; at once on
PostgreSQL, whose notices say when the log grew, and every `POLL_S` elsewhere) which
runs changed, and for each compares what Slack shows with the database:

- a run with a channel has a board; each of its questions has a gate message; each
  failed step attempt has its details in the thread (posts, by their outbox keys);
- a board or gate message that was sent showing another state than the current one
  (its outbox row keeps what it showed: shown.py) gets an edit.

Every request goes through the outbox with the keys the front end uses, so nothing is
queued twice, whichever process or replica gets there first. At start it also looks at
every unfinished run (what makes every open question have its message after any crash
or restart), and every `SWEEP_S` at every unfinished run that is not quietly waiting for
a person: a step's progress is not audited, but a run that only waits changes by answers
and deadlines, which are; so a thousand runs waiting cost an idle `serve` nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.slack import outbox_failures
from bot.slack.frontend import SlackFrontEnd, board_key, gate_key, step_key
from bot.slack.nudges import is_nudge, post_nudges
from bot.slack.outbox import OUTBOX
from bot.slack.outbox_claims import free_dead_claims
from bot.slack.shown import gate_shown, run_shown
from orchestrator import interactions
from orchestrator.changes import Change, ChangeWatch
from orchestrator.errors import NotFound
from orchestrator.queries import moving_runs, run_view, unfinished_runs
from storage.engine import read_transaction
from storage.statuses import OutboxStatus, StepStatus

log = logging.getLogger(__name__)
POLL_S = 0.5  # how often the audit log is read where no notice says it grew (SQLite)
SWEEP_S = 30.0  # how often every unfinished run is looked at too
REPORT_S = 5.0  # how often messages that failed for good are looked for (outbox_failures)
# At start, runs changed this long before the newest change are looked at again: what the
# CLI did while no `serve` ran (a run finished, a gate answered) is brought to Slack too.
LOOKBACK = timedelta(hours=24)
IN_FLIGHT = (OutboxStatus.PENDING, OutboxStatus.SENDING)


class Reconciler:
    """Queues what Slack is missing; `start()` it in `serve`, `stop()` it before the outbox."""

    def __init__(
        self, engine: Engine, front: SlackFrontEnd, *, changes: ChangeWatch | None = None,
        poll_s: float = POLL_S, sweep_s: float = SWEEP_S,
    ) -> None:  # fmt: skip
        """`changes`: the orchestrator's reader of the audit log (`Orchestrator.changes`),
        which polls it; without one (a reconciler on its own) this reads it itself."""
        self.engine, self.front = engine, front
        self.poll_s, self.sweep_s = poll_s, sweep_s
        self._own = changes is None  # this polls the feed itself
        self.changes = ChangeWatch(engine) if changes is None else changes
        self.changes.subscribe(self._seen, lookback=LOOKBACK, every_s=poll_s)
        self._changed: dict[str, None] = {}  # runs told of and not reconciled yet, in order
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._nudges: list[Change] = []  # reminders and escalations not queued yet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="opsloop-reconcile", daemon=True)

    def start(self) -> None:
        self.changes.start()  # a no-op if the orchestrator started it (its first sweep)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _seen(self, changes: list[Change]) -> None:
        """The audit log's reader read `changes`: reconcile their runs on this thread."""
        with self._guard:
            self._changed.update(dict.fromkeys(c.run_id for c in changes if c.run_id))
            self._nudges.extend(c for c in changes if is_nudge(c))
        self._wake.set()

    def _loop(self) -> None:
        next_sweep = next_report = 0.0
        waiting_too = True  # the first sweep looks at every unfinished run
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_s
                    self.sweep(waiting=waiting_too)
                    waiting_too = False
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + REPORT_S
                    outbox_failures.report(self.front.outbox)
                self.tick()
            except Exception:  # the database is away: keep the thread, try again soon
                log.exception("reconciler: could not bring Slack up to date")
                self._stop.wait(5.0)
            # Woken by the reader (or by stop); else when a sweep or a report is due, or
            # to poll the feed itself when it is its own reader.
            due = min(next_sweep, next_report) - time.monotonic()
            self._wake.wait(max(0.0, min(due, self.poll_s) if self._own else due))
            self._wake.clear()

    def tick(self) -> int:
        """Reconcile the runs the audit log says changed; how many messages were asked for.
        A run that could not be reconciled (the database away) is tried again next tick."""
        if self._own:
            self.changes.poll()  # tells `_seen`
        with self._guard:
            changed, self._changed = list(self._changed), {}
            nudges, self._nudges = self._nudges, []
        asked = 0
        for n, run_id in enumerate(changed):
            try:
                asked += self.reconcile(run_id)
            except Exception:
                with self._guard:
                    self._changed = {**dict.fromkeys(changed[n:]), **self._changed}
                    self._nudges[:0] = nudges
                raise
        try:
            return asked + post_nudges(self.engine, self.front, nudges)
        except Exception:
            with self._guard:
                self._nudges[:0] = nudges
            raise

    def sweep(self, waiting: bool = True) -> int:
        """Reconcile every unfinished run, or (`waiting=False`) every one that does not
        only wait for a person; and free the outbox rows dead processes held."""
        free_dead_claims(self.front.outbox)
        ids = unfinished_runs(self.engine) if waiting else moving_runs(self.engine)
        return sum(self.reconcile(run_id) for run_id in ids)

    def reconcile(self, run_id: str) -> int:
        """Queue what one run's messages lack; how many posts or edits were asked for."""
        try:
            run = run_view(self.engine, run_id)
        except NotFound:
            return 0
        channel = self.front.channel_of(run)
        if channel is None:
            return 0
        rows, questions = self._state(run_id)
        front, asked = self.front, 0
        if board_key(run_id) not in rows:
            front.run_started(run)
            asked += 1
        elif _stale(rows, board_key(run_id), f"board-edit:{run_id}", run_shown(run)):
            front.board_changed(run, channel)
            asked += 1
        for step in run.steps:
            if step.status == StepStatus.FAILED and step_key(run_id, step) not in rows:
                front.step_failed(run, step, channel)
                asked += 1
        for question in questions:
            if gate_key(question.id) not in rows:
                front.interaction_opened(run, question)
                asked += 1
            elif _stale(rows, gate_key(question.id), f"gate-edit:{question.id}",
                        gate_shown(question)):  # fmt: skip
                front.interaction_updated(run, question)
                asked += 1
        return asked

    def _state(self, run_id: str) -> tuple[dict[str, Mapping[str, Any]], list[Any]]:
        """The run's outbox rows by key, and its questions (two indexed reads)."""
        table = interactions.INTERACTIONS
        with read_transaction(self.engine) as conn:
            rows = conn.execute(
                sa.select(OUTBOX.c.id, OUTBOX.c.status, OUTBOX.c.result)
                .where(OUTBOX.c.run_id == run_id)
            ).mappings()  # fmt: skip
            by_key = {row["id"]: row for row in rows}
            found = conn.execute(
                sa.select(table).where(table.c.run_id == run_id).order_by(table.c.created_at)
            ).mappings()
            questions = [interactions.interaction_view(row) for row in found]
        return by_key, questions


def _stale(rows: Mapping[str, Mapping[str, Any]], post: str, edit: str, now: str) -> bool:
    """Whether the message was sent showing something else than `now`, with no edit on
    its way. Not posted yet: it shows the state of when it goes. A post or edit that
    failed for good is not asked again here (it would be on every sweep)."""
    if rows[post]["status"] != OutboxStatus.SENT:
        return False
    last = rows.get(edit) or rows[post]
    if last["status"] in IN_FLIGHT or last["status"] == OutboxStatus.FAILED:
        return False
    return (last["result"] or {}).get("shown") != now
