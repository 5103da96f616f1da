"""The public LangGraph checkpointer conformance suite, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from storage.checkpointer import SQLModelSaver


def test_conformance_all_capabilities(db_url: str) -> None:
    saver = SQLModelSaver.from_url(db_url)
    saver.setup()

    @checkpointer_test(name=f"SQLModelSaver[{saver.engine.dialect.name}]")
    async def factory():
        yield saver

    report = asyncio.run(validate(factory))
    failures = {cap: result.failures for cap, result in report.results.items() if not result.passed}
    assert not failures, failures
    assert {c.value for c in ALL_CAPABILITIES} == set(report.results)
    assert all(r.detected for r in report.results.values())
    saver.engine.dispose()
