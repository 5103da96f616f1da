"""What an answer costs before its step resumes, and the one reader of the audit log.

Round trips are counted with an event listener on the real engine (SQLite and
PostgreSQL); how long they take is measured by bench/answer_path.py and
bench/waiting_side_by_side.py, never here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.slack.frontend import SlackFrontEnd
from bot.slack.outbox import Outbox
from bot.slack.reconciler import Reconciler
from orchestrator import gate_writes, runs
from orchestrator.answer_writes import AnswerWrites
from orchestrator.changes import NOTIFIED_POLL_S, Change, ChangeWatch
from orchestrator.clock import FakeClock
from orchestrator.notices import CHANGES, Listener
from orchestrator.queries import open_interactions
from orchestrator.stepgraph import StepGraph
from storage.checkpointer import SQLModelSaver
from storage.engine import create_engine, normalize_url, write_transaction
from storage.schema import setup
from storage.types import utcnow
from tests.conftest import PG_URL
from tests.orchestrators import running
from tests.polling import until
from tests.sample_workflows import GATED, blocking_shell


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[tuple[str, str]]]:
    """(thread name, statement) of every statement and commit sent while inside."""
    seen: list[tuple[str, str]] = []

    def statement(conn: object, cursor: object, sql: str, *rest: object) -> None:
        seen.append((threading.current_thread().name, sql))

    def commit(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            seen.append((threading.current_thread().name, "COMMIT"))

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def _thread_of(engine: sa.Engine, run_id: str, step_id: str) -> str:
    step = runs.STEPS
    with engine.connect() as conn:
        return conn.execute(sa.select(step.c.thread_id).where(
            step.c.run_id == run_id, step.c.step_id == step_id)).scalar_one()  # fmt: skip


def test_an_answer_ends_its_gate_and_claims_the_next_step_in_its_own_transaction(
    engine: sa.Engine,
) -> None:
    """The answer's transaction ends the gate (its answer is its result), writes the gate's
    finished checkpoint and claims the step after it: one commit from the answer to that
    step's start. It used to claim the gate to resume, then a worker resumed it in
    LangGraph (three checkpoint reads, two writes) and another pass claimed the next step;
    before that, the answer committed and the question and run were read again."""
    with running(engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        [gate] = open_interactions(engine, run_id)
        with statements(engine) as seen:
            orch.decide(gate.id, "U0BOSS", "approve")
            answered = [sql for who, sql in seen if who == threading.current_thread().name]
            assert orch.wait(run_id, 30).status == "succeeded"
        assert answered.count("COMMIT") == 1 + (engine.dialect.name == "sqlite"), answered
        commit = max(i for i, sql in enumerate(answered) if sql == "COMMIT")  # the answer's
        ship = [i for i, sql in enumerate(answered)  # PostgreSQL: fused in a CTE (pass_writes)
                if "UPDATE step_run" in sql and " thread_id=" in sql]  # fmt: skip
        assert len(ship) == 1 and ship[0] < commit, answered  # the next step's claim
        assert not [sql for who, sql in seen if sql.startswith("INSERT INTO interaction")]
        # No LangGraph resume: it read the checkpoint's values and pending writes too.
        assert not [sql for who, sql in seen if "FROM checkpoint_" in sql]
        step = orch.view(run_id).step("approve")
        assert step.status == "succeeded"
        assert step.outputs == {"approved": True, "approved_by": ["U0BOSS"]}
        thread_id = _thread_of(engine, run_id, "approve")
        assert StepGraph(SQLModelSaver(engine)).inspect(thread_id) == ("finished", step.outputs)


def test_a_rejected_gate_fails_in_the_answers_transaction_and_its_thread_stays_paused(
    engine: sa.Engine,
) -> None:
    """A gate that says no fails with the reason, and what needs it is skipped, as when
    LangGraph resumed it; its thread stays at its interrupt, as LangGraph leaves a node
    that raised."""
    with running(engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        [gate] = open_interactions(engine, run_id)
        orch.decide(gate.id, "U0BOSS", "reject", comment="not today")
        run = orch.wait(run_id, 30)
        assert run.status == "failed"
        assert run.step("approve").status == "failed"
        assert run.step("approve").error == "rejected by U0BOSS: not today"
        assert run.step("ship").status == "skipped"
        thread_id = _thread_of(engine, run_id, "approve")
        assert StepGraph(SQLModelSaver(engine)).inspect(thread_id)[0] == "interrupted"


@pytest.mark.postgres
def test_an_answer_whose_pass_fails_is_recorded_and_the_pass_follows_its_commit(
    pg_url: str,
) -> None:
    """The pass made in the answer's transaction fails (here PostgreSQL refuses the claim
    of the step after the gate, once): the transaction is rolled back, the answer is
    recorded again without it, and the run's next pass, after the commit, starts the step.
    Without that, the person's answer failed with the pass's error."""
    engine = create_engine(pg_url)
    setup(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE SEQUENCE refused; "
            "CREATE FUNCTION refuse_once() RETURNS trigger AS $$ BEGIN "
            "IF NEW.step_id = 'ship' AND NEW.status = 'running' AND nextval('refused') = 1 "
            "THEN RAISE EXCEPTION 'refused once'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER refuse_once BEFORE UPDATE ON step_run "
            "FOR EACH ROW EXECUTE FUNCTION refuse_once()"))  # fmt: skip
    try:
        with running(engine, GATED, clock=FakeClock()) as orch:
            run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
            assert orch.wait(run_id, 30).status == "waiting"
            [gate] = open_interactions(engine, run_id)
            orch.decide(gate.id, "U0BOSS", "approve")
            run = orch.wait(run_id, 30)
            assert run.status == "succeeded", run
            assert run.step("approve").outputs == {"approved": True, "approved_by": ["U0BOSS"]}
            with engine.connect() as conn:
                refused = conn.execute(sa.text("SELECT last_value FROM refused")).scalar()
                answered = conn.execute(sa.text(
                    "SELECT count(*) FROM audit_log WHERE action = 'interaction.answered'"
                )).scalar()  # fmt: skip
            assert refused >= 2  # refused once, then let through
            assert answered == 1  # counted once
    finally:
        engine.dispose()


def test_a_serving_process_reads_the_audit_log_once_for_the_question_watch_and_slack(
    engine: sa.Engine,
) -> None:
    """`serve` used to read the change feed twice (the question watch and the reconciler,
    each with its own reader): now one read tells both."""
    with running(engine, GATED, recover=True) as serving:
        reconciler = Reconciler(engine, SlackFrontEnd(Outbox(engine), "C0OPS"),
                                changes=serving.changes)  # fmt: skip
        told: list[list[Change]] = []
        serving.changes.subscribe(told.append)
        with running(engine, GATED) as cli:  # another process opens a question
            run_id = cli.start_run("gated", {"service": "api"}, started_by="U0OPS")
            assert cli.wait(run_id, 30).status == "waiting"
        with statements(engine) as seen:
            serving.changes.poll()
        feed_reads = [sql for _, sql in seen if "FROM audit_log" in sql]
        assert len(feed_reads) <= 1, feed_reads  # 0: the timer or a notice read it first
        until(lambda: any(c.run_id == run_id for batch in told for c in batch),
              what="the change to reach a subscriber")  # fmt: skip
        assert reconciler.tick() == 2  # told too: the board and the gate message are missing


def test_the_periodic_reconcile_sweep_leaves_runs_that_only_wait_to_the_change_feed(
    engine: sa.Engine,
) -> None:
    """A thousand runs waiting for people cost an idle `serve` with Slack a sweep of every
    one of them every 30 s (4 queries each); only the start-up sweep looks at them now."""
    reconciler = Reconciler(engine, SlackFrontEnd(Outbox(engine), "C0OPS"))
    with running(engine, GATED) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        assert reconciler.sweep(waiting=False) == 0
        assert reconciler.sweep() == 2  # at start: its board and its gate message


@pytest.mark.postgres
def test_on_postgresql_an_audited_commit_wakes_the_reader_at_once(pg_url: str) -> None:
    """A notice (migration 0020's trigger on audit_log) makes the reader poll: no timer
    runs here, so only the notice can bring the change (serve's timer polls every 5 s on
    PostgreSQL, a fallback for a lost notice)."""
    engine = create_engine(pg_url)
    setup(engine)
    listener = Listener(engine, "U-test-replica")
    try:
        watch = ChangeWatch(engine)
        told: list[Change] = []
        watch.subscribe(told.extend)
        listener.on(CHANGES, watch.poll)
        watch.start()
        listener.start()
        assert watch.every_s(notified=listener.listens) == NOTIFIED_POLL_S
        # The listener connects in its thread: audit until one entry comes through.
        n = 0

        def poked() -> bool:
            nonlocal n
            n += 1
            with write_transaction(engine) as conn:
                runs.audit(conn, "U0OPS", "test.poked", now=utcnow(), attempt=n)
            try:  # the notice's poll: no timer polls here
                return until(lambda: any(c.action == "test.poked" for c in told), timeout=1.0)
            except AssertionError:  # not listening yet
                return False

        until(poked, timeout=20.0, what="a notice to wake the reader")
    finally:
        listener.stop()
        engine.dispose()


@pytest.mark.postgres
def test_a_notice_names_the_audit_logs_schema_whatever_the_writers_search_path(
    pg_url: str,
) -> None:
    """The trigger named `current_schema()`, the writing session's first search_path
    entry: a writer that names the table with its schema (its search_path elsewhere) sent
    a notice every listener ignored, so its change came only at the 5 s fallback poll."""
    engine = create_engine(pg_url)
    setup(engine)
    with engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    plain = sa.create_engine(normalize_url(PG_URL))
    try:
        with plain.connect() as listening:
            raw = listening.connection.driver_connection
            raw.autocommit = True
            raw.execute("LISTEN opsloop")
            with plain.begin() as writer:  # search_path: the default, not opsloop's schema
                writer.execute(sa.text(
                    f'INSERT INTO "{schema}".audit_log (at, actor, action, detail) '
                    "VALUES (now(), 'U0OPS', 'test.elsewhere', '{}')"))  # fmt: skip
            payloads = [n.payload for n in raw.notifies(timeout=30, stop_after=1)]
        assert payloads == [f"changes {schema}"]
    finally:
        plain.dispose()
        engine.dispose()


def _handed_flow(tmp_path: Path) -> str:
    def block(name: str) -> str:
        return blocking_shell(tmp_path / f"{name}.started", tmp_path / f"{name}.go")

    return f"""
name: handed
steps:
  - id: ask
    approval:
      message: "ok?"
      approvers: {{users: [U0BOSS]}}
  - id: a1
    shell: {block("a1")}
  - id: a2
    shell: {block("a2")}
  - id: x
    shell: {block("x")}
"""


@contextmanager
def released(tmp_path: Path, *names: str) -> Iterator[None]:
    """Every blocking step is let go on the way out (close() waits for running steps)."""
    try:
        yield
    finally:
        for name in names:
            (tmp_path / f"{name}.go").touch()


BARRIER = """
name: barrier
steps:
  - id: one
    shell: ["true"]
"""


def test_an_answer_keeps_the_steps_handed_to_workers_as_handed(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """x waits for a worker (pending) when the answer comes. The state the answer keeps
    (people._claim: RunState(..., frozenset())) once forgot that x was queued on the pool,
    so the next pass queued it a second time; the second worker claim lost and dropped x
    from running_steps while x ran (drain() would then say nothing runs). Steps are no
    longer queued (a pass claims one as a worker frees): x starts once, and counts while
    it runs."""
    flows = (_handed_flow(tmp_path), BARRIER)
    with (
        running(engine, *flows, clock=FakeClock(), max_workers=2) as orch,
        released(tmp_path, "a1", "a2", "x"),
    ):
        run_id = orch.start_run("handed", {}, started_by="U0OPS")
        until(lambda: (tmp_path / "a1.started").exists() and (tmp_path / "a2.started").exists())
        [gate] = until(lambda: open_interactions(engine, run_id))
        assert orch.view(run_id).step("x").status == "pending"
        assert (run_id, "x") not in orch.running_steps()  # waits for a1 or a2 to end
        orch.decide(gate.id, "U0BOSS", "approve")
        (tmp_path / "a1.go").touch()  # its worker's pass, then x's first claim
        until(lambda: (tmp_path / "x.started").exists())
        (tmp_path / "a2.go").touch()  # the gate resumes, then whatever else was queued
        until(lambda: orch.view(run_id).step("ask").status == "succeeded")
        # The pool is FIFO with one free worker: once this run ends, all queued before it ran.
        other = orch.start_run("barrier", {}, started_by="U0OPS")
        assert orch.wait(other, 30).status == "succeeded"
        assert orch.view(run_id).step("x").status == "running"
        assert (run_id, "x") in orch.running_steps(), orch.running_steps()
        (tmp_path / "x.go").touch()
        assert orch.wait(run_id, 30).status == "succeeded"


def test_a_run_no_schedule_started_ends_without_a_schedule_transaction(engine: sa.Engine) -> None:
    """Counting a schedule's failures in a row opened a transaction for every run that
    ended, to read who started it, which the run's view holds: in bench/answer_path.py it
    ran beside the next answer. Only a schedule's runs count now."""
    with running(engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        with statements(engine) as seen:
            orch.cancel(run_id, "U0OPS")  # ends the run in this thread, its listeners too
            mine = [sql for who, sql in seen if who == threading.current_thread().name]
        assert not [sql for sql in mine if sql.startswith("SELECT workflow_run.started_by")]


@pytest.mark.postgres
def test_an_answer_whose_runs_lock_is_taken_answers_again_under_it(pg_url: str) -> None:
    """On PostgreSQL the answer's first try reads the question and locks the run's row
    before it takes the run's lock in this process, so only if that lock is free: a pass
    holding it may be waiting for that row. If it is taken, the try ends having written
    nothing and the answer is made as before, under the lock: recorded once."""
    engine = create_engine(pg_url)
    setup(engine)
    with running(engine, GATED, clock=FakeClock()) as orch:
        run_id = orch.start_run("gated", {"service": "api"}, started_by="U0OPS")
        assert orch.wait(run_id, 30).status == "waiting"
        [gate] = open_interactions(engine, run_id)
        held = orch._advancer.run_lock(run_id)
        with statements(engine) as seen, held:
            answering = threading.Thread(target=orch.decide, args=(gate.id, "U0BOSS", "approve"),
                                         name="answering")  # fmt: skip
            answering.start()
            until(lambda: ("answering", "COMMIT") in seen)  # the first try gave up
            mine = [sql for who, sql in seen if who == "answering"]
            assert not [sql for sql in mine if sql.startswith(("UPDATE", "INSERT", "WITH"))]
        answering.join(30)
        run = orch.wait(run_id, 30)
        assert run.status == "succeeded", run
        assert run.step("approve").outputs == {"approved": True, "approved_by": ["U0BOSS"]}
        with engine.connect() as conn:
            answered = conn.execute(sa.text(
                "SELECT count(*) FROM audit_log WHERE action = 'interaction.answered'"
            )).scalar()  # fmt: skip
        assert answered == 1
    engine.dispose()


def test_an_answer_stores_the_runs_wake_up_time_as_every_other_timestamp(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite keeps a timestamp as the text it is given: UtcDateTime writes one form (UTC,
    no offset) so that ordering and equality hold. The answer's wake-up of its run wrote
    the run's updated_at without that type (sqlite3's own adapter: "...+00:00")."""
    engine = create_engine(sqlite_url)
    setup(engine)
    block = blocking_shell(tmp_path / "ship.started", tmp_path / "ship.go")
    flow = "name: asked\nsteps:\n  - id: approve\n    approval:\n      message: ok?\n"
    flow += "      approvers: {users: [U0BOSS]}\n  - id: ship\n    needs: approve\n"
    flow += f"    shell: {block}\n"
    try:
        with running(engine, flow, clock=FakeClock()) as orch:
            try:
                run_id = orch.start_run("asked", {}, started_by="U0OPS")
                assert orch.wait(run_id, 30).status == "waiting"
                [gate] = open_interactions(engine, run_id)
                orch.decide(gate.id, "U0BOSS", "approve")
                until(lambda: (tmp_path / "ship.started").exists(), what="the step after the gate")
                with engine.connect() as conn:
                    stored = conn.exec_driver_sql(
                        "SELECT updated_at FROM workflow_run WHERE id = ?", (run_id,)
                    ).scalar_one()
                assert "+" not in stored and stored[19] == ".", stored  # "...HH:MM:SS.ffffff"
            finally:
                (tmp_path / "ship.go").touch()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_answers_one_statement_refuses_a_naive_time_as_every_timestamp_does(
    pg_url: str,
) -> None:
    """UtcDateTime refuses a naive datetime (PostgreSQL would read it in the session's
    zone). The gate's end and the run's wake-up share one time parameter, and the untyped
    one (inside a CASE) was the one bound: a naive time went through unchecked."""
    engine = create_engine(pg_url)
    try:
        setup(engine)
        aware = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
        writes = AnswerWrites(
            "no-such-question", 1, {"status": "answered"},
            {"at": aware, "actor": "U0BOSS", "action": "approve", "run_id": "r",
             "interaction_id": "no-such-question", "detail": {}},
        )  # fmt: skip
        ended = {"status": "succeeded", "outputs": {}, "error": None}
        with pytest.raises(ValueError, match="naive"), write_transaction(engine) as conn:
            gate_writes.send(conn, writes, "r", "s", ended, aware.replace(tzinfo=None), None)
    finally:
        engine.dispose()
