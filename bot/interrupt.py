"""Ctrl-C in a command that follows a run (`run`, `decide`, `retry`, ...).

Before, the first Ctrl-C was silent and the CLI went on until the step ended; a second
one exited and left the shell step's process running, re-parented to init. Now the first
says what is running and stops cleanly: nothing new starts, shell steps' process groups
are killed, and the steps stay `running` in the database, as a crash leaves them, so
`opsloop resume` continues them (idempotent ones run again; for others a person decides).
A second Ctrl-C exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `opsloop` imports this module for every command: keep it light
    from orchestrator.engine import Orchestrator

EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """Ctrl-C stopped the command; the message says what was left and how to go on.
    `threads_left`: python steps still run (their threads cannot be stopped)."""

    def __init__(self, message: str, threads_left: bool = False) -> None:
        super().__init__(message)
        self.threads_left = threads_left


def stop_on_interrupt(orch: Orchestrator) -> Interrupted:
    """Stop `orch` after a first Ctrl-C; the error to report. A second Ctrl-C forces."""
    signal.signal(signal.SIGINT, _force)
    running = sorted(key for key in orch.running_steps() if _running(orch, *key))
    what = ", ".join(f"{step} of run {run}" for run, step in running)
    print(f"\nopsloop: stopping{f': {what} running, stopped now' if what else ''} "
          "(Ctrl-C again to force)", file=sys.stderr, flush=True)  # fmt: skip
    try:
        orch.drain(0)  # starts nothing more, kills shell steps, leaves them for `resume`
    except Exception:  # e.g. already closed: what ran is in the database either way
        logging.getLogger(__name__).exception("stopping after Ctrl-C failed")
    if not running:
        return Interrupted("interrupted; no step was running (`opsloop pending` lists what "
                           "waits for a person)")  # fmt: skip
    left = sorted(orch.running_steps())  # python steps: a thread cannot be killed
    note = (f"; python step(s) {', '.join(s for _, s in left)} could not be stopped and end "
            "with this process") if left else ""  # fmt: skip
    return Interrupted(
        f"interrupted: {what} stopped mid-flight{note}. `opsloop resume` continues: a step "
        "runs again if it is idempotent, otherwise you are asked to retry, skip or fail it",
        threads_left=bool(left),
    )


def _running(orch: Orchestrator, run_id: str, step_id: str) -> bool:
    """Whether the step runs work: not a gate, whose worker may still be handing it over
    to a person (nothing to stop or resume there)."""
    try:
        run = orch.view(run_id)
        if orch.workflow_of(run).step(step_id).is_gate:
            return False
        return any(s.step_id == step_id and s.status == "running" for s in run.steps)
    except Exception:  # the database is gone too: count it as running
        return True


def report(exc: Interrupted) -> int:
    """Say what Ctrl-C stopped; exit at once if python steps' threads still run (the
    interpreter would wait for them at exit)."""
    print(f"opsloop: {exc}", file=sys.stderr, flush=True)
    if exc.threads_left:
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED


def _force(signum: int, frame: FrameType | None) -> None:
    print("\nopsloop: forced to stop; `opsloop resume` continues unfinished runs",
          file=sys.stderr, flush=True)  # fmt: skip
    os._exit(EXIT_INTERRUPTED)
