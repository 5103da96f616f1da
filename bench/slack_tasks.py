"""Python tasks that bench/slack_ack.py's workflows run (`python: slack_tasks:<function>`).

bench/slack_ack.py puts bench/ on sys.path, so the module imports as `slack_tasks`
both in the bench and in the orchestrator that runs the steps (one process, one
module object). `stamp` records the wall-clock time it starts at, per run, so the
bench can time a click sent by another process to the step after the gate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

_changed = threading.Condition()
_started: dict[str, float] = {}  # run id -> time.time() when its `stamp` step began


def stamp(ctx: Any) -> dict[str, float]:
    """A near-empty step: returns and records the moment it started."""
    at = time.time()
    with _changed:
        _started[ctx.run_id] = at
        _changed.notify_all()
    return {"at": at}


def wait_started(run_ids: Iterable[str], timeout: float) -> dict[str, float]:
    """When each run's `stamp` step started; TimeoutError if one has not within `timeout`."""
    wanted = list(run_ids)
    with _changed:
        if not _changed.wait_for(lambda: all(r in _started for r in wanted), timeout):
            missing = [r for r in wanted if r not in _started]
            raise TimeoutError(f"{len(missing)} run(s) never reached their step: {missing[:3]}")
        return {r: _started[r] for r in wanted}
