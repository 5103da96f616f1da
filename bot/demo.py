"""`opsloop demo`: the README's main job, the example workflows end to end.

It types the same commands an operator would (`validate`, `run`, `decide`,
`runs`) into the real CLI, against the configured database (SQLite in
./opsloop.db by default): `hello` runs by itself; `deploy` builds and tests in
parallel, stops at an approval gate and at a rollout decision, and finishes
once both are answered by someone other than the person who started it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

from bot.settings import Settings
from orchestrator.queries import open_interactions, recent_runs
from storage.engine import create_engine

Main = Callable[[Sequence[str]], int]
OPERATOR, APPROVER = "U0DEMOOPS", "U0DEMOLEAD"


def run_demo(main: Main, settings: Settings) -> int:
    where = ["--database-url", settings.database_url, "--workflows", str(settings.workflows_dir)]

    def opsloop(*args: str) -> int:
        print(f"\n$ opsloop {shlex.join(args)}", flush=True)
        return main([*args, *where])

    steps: list[tuple[str, ...]] = [
        ("validate",),
        ("run", "hello", "name=two words; not a command"),
        ("run", "deploy", "service=api", "version=v1.4.2", "--as", OPERATOR, "--no-prompt"),
    ]
    for args in steps:
        if opsloop(*args) != 0:
            return 1
    engine = create_engine(settings.database_url)
    try:
        run_id = recent_runs(engine, 1)[0].id
        for answer in ("approve", "canary"):
            pending = open_interactions(engine, run_id)
            if not pending:
                break
            code = opsloop("decide", pending[0].id, answer, "--as", APPROVER, "--no-prompt",
                           "--comment", "demo")  # fmt: skip
            if code != 0:
                return code
    finally:
        engine.dispose()
    return opsloop("runs", "--limit", "5")
