"""Exactly one of many racing writers claims a pending row."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from storage.claims import claim
from storage.engine import create_engine, write_transaction
from storage.models import Interaction, WorkflowRun
from storage.statuses import InteractionStatus


def _pending_interaction(engine: sa.Engine) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            sa.insert(WorkflowRun.__table__).values(
                id="r1",
                workflow="deploy",
                definition_hash="h",
                params={},
                started_by="U0",
                front_end="cli",
                status="waiting",
                version=0,
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        )
        conn.execute(
            sa.insert(Interaction.__table__).values(
                id="i1",
                run_id="r1",
                step_id="gate",
                kind="approval",
                prompt="ship it?",
                required_approvals=1,
                allow_requester=False,
                status="pending",
                responses=[],
                version=0,
                created_at=sa.func.now(),
            )
        )


def test_twenty_racing_answers_give_one_winner(engine: sa.Engine) -> None:
    _pending_interaction(engine)
    # Each "replica" has its own engine: no in-process lock helps them.
    engines = [create_engine(engine.url.render_as_string(hide_password=False)) for _ in range(4)]
    barrier = threading.Barrier(20)
    wins: list[str] = []

    def answer(n: int) -> None:
        user = f"U{n}"
        barrier.wait(timeout=30)
        with write_transaction(engines[n % 4]) as conn:
            if claim(
                conn,
                Interaction,
                "i1",
                expect=[InteractionStatus.PENDING],
                values={"status": InteractionStatus.APPROVED, "answered_by": user},
            ):
                wins.append(user)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, answered_by, version FROM interaction")).one()
    assert tuple(row) == ("approved", wins[0], 1)
    for e in engines:
        e.dispose()


def test_claim_with_a_stale_version_loses(engine: sa.Engine) -> None:
    _pending_interaction(engine)
    with write_transaction(engine) as conn:
        assert not claim(conn, Interaction, "i1", expect=["pending"], values={}, version=7)
        assert claim(conn, Interaction, "i1", expect=["pending"], values={}, version=0)
        assert not claim(conn, Interaction, "i1", expect=["pending"], values={}, version=0)
