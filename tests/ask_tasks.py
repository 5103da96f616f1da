"""Task functions that ask people mid-step with `ctx.ask`, in the forms a workflow file uses."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

# What `ask_as_told` asks, by step id: (kind, spec), each wrong in one way.
BAD_ASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "bogus": ("bogus", {}),
    "bad_deadline": ("decision", {"options": ["x", "y"], "deadline": "soon"}),
    "typo": ("decision", {"options": ["x", "y"], "optoins": ["z"]}),
    "bad_default": ("decision", {"options": ["x", "y"], "default": "z"}),
}


def pick_then_fill(ctx: Any) -> dict:
    """A decision and a form written in the short forms of a YAML gate."""
    choice = ctx.ask("decision", "pick one", options=["x", "y"])
    form = ctx.ask(
        "input",
        "and the ticket?",
        fields={"ticket": {"required": True}, "risk": {"type": "choice", "choices": ["lo", "hi"]}},
    )
    return {"picked": choice["value"], "form": form["value"]}


def pick_by_deadline(ctx: Any) -> dict:
    """Nobody answers: the deadline takes the default."""
    answer = ctx.ask(
        "decision", "pick one", options=["x", "y"], default="y", deadline="1s",
        on_deadline="default",
    )  # fmt: skip
    return {"picked": answer["value"], "by": answer["by"]}


def ask_as_told(ctx: Any) -> dict:
    kind, spec = BAD_ASKS[ctx.step_id]
    return {"answer": ctx.ask(kind, "what?", **spec)}


def ask_then_hold(ctx: Any, params: dict) -> dict:
    """Ask, then record that the code after the question ran, then hold until released."""
    ctx.ask("approval", "go on?")
    with open(params["effects"], "a") as out:
        out.write(f"{ctx.step_id}/after\n")
        out.flush()
        os.fsync(out.fileno())
    deadline = time.monotonic() + 60
    while not os.path.exists(params["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)  # the task's own "work": it holds until the test releases it
    return {"done": True}


def leak_token(ctx: Any) -> dict:
    """A task that may pause (it takes ctx) and returns what it found: a secret."""
    return {"found": "token=s3cr3t-of-the-bot"}


# ask_then_hold_worker's counts, by params["key"]: steps past their answer now, the most
# at once, and the event that lets them end.
PAST_ANSWER: dict[str, int] = {}
PEAK: dict[str, int] = {}
STARTED: dict[str, int] = {}  # past the answer, in all
RELEASE: dict[str, threading.Event] = {}
_COUNTING = threading.Lock()


def ask_then_hold_worker(ctx: Any, params: dict) -> dict:
    """Ask, then hold a worker until the test sets RELEASE[key]; counted while it holds."""
    ctx.ask("approval", "go on?")
    key = params["key"]
    with _COUNTING:
        PAST_ANSWER[key] = PAST_ANSWER.get(key, 0) + 1
        STARTED[key] = STARTED.get(key, 0) + 1
        PEAK[key] = max(PEAK.get(key, 0), PAST_ANSWER[key])
    try:
        RELEASE[key].wait(30)
    finally:
        with _COUNTING:
            PAST_ANSWER[key] -= 1
    return {"done": True}
