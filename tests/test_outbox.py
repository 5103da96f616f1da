"""The chat outbox on real databases: ordering, coalescing, retries, two dispatchers racing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.slack.dispatcher import Dispatcher
from bot.slack.outbox import Message, Outbox
from bot.slack.pacing import ChannelPacer
from tests.polling import until


class Recorder:
    """A `send` that records what it was asked to send and can fail on purpose."""

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, message: Message) -> dict:
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                raise ConnectionError("slack is away")
            self.sent.append((message.id, message))
            return {"channel": message.channel, "ts": f"{len(self.sent)}.000"}

    def ids(self) -> list[str]:
        with self.lock:
            return [key for key, _ in self.sent]


def test_a_message_asked_twice_is_sent_once_and_edits_wait_for_their_post(
    engine: sa.Engine,
) -> None:
    outbox, send = Outbox(engine), Recorder()
    outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1", after="board:r1")
    for _ in range(3):
        outbox.post("board:r1", "board.post", channel="C1", run_id="r1")
    dispatcher = Dispatcher(outbox, send, poll_s=0.05)
    dispatcher.start()
    try:
        until(lambda: len(send.ids()) == 2)
    finally:
        dispatcher.stop()
    assert send.ids() == ["board:r1", "board-edit:r1"]
    edit = send.sent[1][1]
    assert edit.after_result == {"channel": "C1", "ts": "1.000"}  # edits know the post's ts


def test_edits_coalesce_and_are_spaced(engine: sa.Engine) -> None:
    # The outbox's clock stands still: on the wall clock, a drain more than EDIT_INTERVAL
    # (1 s) after the last edit was sent (a loaded machine) would send the next one at once.
    now = datetime.now(UTC)
    outbox, send = Outbox(engine, clock=lambda: now), Recorder()
    outbox.post("board:r1", "board.post", channel="C1", run_id="r1")
    dispatcher = Dispatcher(outbox, send, poll_s=0.05)
    dispatcher.drain()
    for _ in range(50):  # fifty steps finish at once
        outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1", after="board:r1")
    dispatcher.drain()
    assert send.ids() == ["board:r1", "board-edit:r1"]
    outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1", after="board:r1")
    dispatcher.drain()  # too soon after the last edit: it waits for EDIT_INTERVAL
    assert send.ids().count("board-edit:r1") == 1
    outbox.clock = lambda: now + timedelta(seconds=2)
    dispatcher.drain()
    assert send.ids().count("board-edit:r1") == 2


def test_failures_are_retried_later_and_nothing_is_lost(engine: sa.Engine) -> None:
    outbox, send = Outbox(engine), Recorder(fail_first=2)
    outbox.post("gate:i1", "gate.post", channel="C1", run_id="r1")
    dispatcher = Dispatcher(outbox, send)
    dispatcher.drain()
    assert send.ids() == [] and outbox.counts() == {"pending": 1}
    for minutes in (1, 2):
        outbox.clock = lambda m=minutes: datetime.now(UTC) + timedelta(minutes=m)
        dispatcher.drain()
    assert send.ids() == ["gate:i1"] and outbox.counts() == {"sent": 1}


def test_two_dispatchers_never_send_one_message_twice(engine: sa.Engine) -> None:
    outbox, send = Outbox(engine), Recorder()
    for n in range(40):
        outbox.post(f"step:r1:s{n}:1", "thread.step", channel=f"C{n % 4}", run_id="r1")
    fast = dict(pacer=ChannelPacer(per_second=1000.0), poll_s=0.01)
    first, second = (
        Dispatcher(Outbox(engine), send, **fast),
        Dispatcher(Outbox(engine), send, **fast),
    )
    for dispatcher in (first, second):
        dispatcher.start()
    try:
        until(lambda: len(send.ids()) >= 40 and outbox.counts() == {"sent": 40})
    finally:
        first.stop()
        second.stop()
    assert sorted(send.ids()) == sorted(f"step:r1:s{n}:1" for n in range(40))


def test_racing_first_edits_are_one_row_and_none_raises(engine: sa.Engine) -> None:
    """Answers racing on PostgreSQL: a check-then-insert lost edits with UniqueViolation."""
    errors: list[BaseException] = []
    for n in range(30):
        outbox, start = Outbox(engine), threading.Barrier(4)

        def edit(outbox: Outbox, iid: str, start: threading.Barrier) -> None:
            start.wait()
            try:
                outbox.edit(f"gate-edit:{iid}", "gate.update", channel="C1", run_id="r1",
                            after=f"gate:{iid}")  # fmt: skip
                outbox.post(f"gate:{iid}", "gate.post", channel="C1", run_id="r1")
            except Exception as exc:  # what the race raised is the finding
                errors.append(exc)

        threads = [threading.Thread(target=edit, args=(outbox, f"i{n}", start)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert outbox.counts() == {"pending": 60}


def test_a_send_that_fails_while_an_edit_arrives_is_retried_not_stranded(
    engine: sa.Engine,
) -> None:
    """Seen in the 429/500 storm: an edit bumped the row while its send failed, the
    failure's UPDATE matched no version, and the row stayed `sending` for its lease."""
    outbox = Outbox(engine)
    outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1")
    (message,) = outbox.due()
    claimed = outbox.claim(message, "w1")
    assert claimed is not None
    outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1")  # meanwhile
    outbox.failed(claimed, "connection reset", retry_in=0)
    assert [m.id for m in outbox.due()] == ["board-edit:r1"]  # due again at once
    (again,) = outbox.due()
    claimed = outbox.claim(again, "w1")
    assert claimed is not None
    outbox.edit("board-edit:r1", "board.update", channel="C1", run_id="r1")
    outbox.defer(claimed, 0, "ratelimited")
    assert [m.id for m in outbox.due()] == ["board-edit:r1"]
