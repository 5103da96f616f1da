"""Task functions the engine tests run (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import threading
import time

from orchestrator.errors import StepFailed


def mark(params: dict, needs: dict) -> dict:
    path = params.get("log")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {params.get('tag', '')}\n")
    return {"at": time.monotonic(), "needs": sorted(needs)}


def confidence(params: dict) -> dict:
    return {"confidence": 0.95}


def ok() -> dict:
    return {"n": 1, "word": "x"}


def boom() -> dict:
    raise StepFailed("boom")


def crash() -> dict:
    raise RuntimeError("unexpected")


def effect(ctx: object) -> dict:
    """Record "<run>/<step>/start", work briefly, record ".../done" (crash tests read the file).

    The file comes from CRASH_TEST_LOG; each line is fsync'ed so that a
    SIGKILL right after it cannot lose it.
    """
    path = os.environ["CRASH_TEST_LOG"]
    key = f"{ctx.run_id}/{ctx.step_id}"  # type: ignore[attr-defined]
    _append(path, f"{key}/start\n")
    time.sleep(0.01)  # the step's "work": a window for a kill between start and done
    _append(path, f"{key}/done\n")
    return {"step": ctx.step_id}  # type: ignore[attr-defined]


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def ask_twice(ctx: object) -> dict:
    """Ask a person twice in the middle of the step; return both answers."""
    approval = ctx.ask("approval", "restart the database?")  # type: ignore[attr-defined]
    choice = ctx.ask(  # type: ignore[attr-defined]
        "decision",
        "which replica first?",
        options=[{"value": "east", "label": "East"}, {"value": "west", "label": "West"}],
    )
    return {"approval": approval, "choice": choice}


def drop_connections(params: dict) -> dict:
    """Terminate every PostgreSQL backend named params["app"]: what a server restart does."""
    import psycopg

    with psycopg.connect(params["dsn"], autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (params["app"],),
        ).fetchone()
    return {"dropped": dropped[0] if dropped else 0}


GATES: dict[str, threading.Event] = {}
CALLS: dict[str, int] = {}


def held(params: dict) -> dict:
    """Count the call, then wait until the test opens the gate named by params["key"]."""
    key = params["key"]
    CALLS[key] = CALLS.get(key, 0) + 1
    GATES.setdefault(key, threading.Event()).wait(30)
    return {"calls": CALLS[key]}


def flaky(params: dict) -> dict:
    """Fail until called params["succeed_on"] times for params["key"]; count every call."""
    key = params["key"]
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] < params["succeed_on"]:
        raise RuntimeError(f"flaky failure {CALLS[key]}")
    return {"calls": CALLS[key]}


OVERLAP = threading.Condition()
OVERLAPS: dict[str, dict[str, int]] = {}


def overlapping(params: dict) -> dict:
    """Count how many calls for params["key"] run at once (`now`, `peak`, `calls`).

    A call holds until params["limit"] calls have overlapped (at most 20 s), then a moment
    longer, in which a call beyond the limit would show up in `peak`.
    """
    key, limit = params["key"], params["limit"]
    with OVERLAP:
        seen = OVERLAPS.setdefault(key, {"now": 0, "peak": 0, "calls": 0})
        seen["now"] += 1
        seen["calls"] += 1
        seen["peak"] = max(seen["peak"], seen["now"])
        OVERLAP.notify_all()
        OVERLAP.wait_for(lambda: seen["peak"] >= limit, timeout=20)
        OVERLAP.wait_for(lambda: seen["peak"] > limit, timeout=0.2)
        seen["now"] -= 1
        OVERLAP.notify_all()
        return {"peak": seen["peak"]}


RUNNING: dict[str, list[int]] = {}  # per key: [attempts running now, most at once, told]
_RUNNING_LOCK = threading.Lock()


def cooperative(params: dict, ctx: object) -> dict:
    """Run until told the attempt timed out (ctx.cancelled); count overlap and telling."""
    key = params["key"]
    with _RUNNING_LOCK:
        seen = RUNNING.setdefault(key, [0, 0, 0])
        seen[0] += 1
        seen[1] = max(seen[1], seen[0])
    try:
        told = ctx.cancelled.wait(30)  # type: ignore[attr-defined]
        time.sleep(0.05)  # cleaning up after being told: the next attempt must wait for it
    finally:
        with _RUNNING_LOCK:
            seen[0] -= 1
            seen[2] += told
    return {"told": told}


def not_a_number() -> dict:
    """Outputs PostgreSQL's JSON refuses (NaN); SQLite stores them."""
    return {"ratio": float("nan")}


def thread_name() -> dict:
    """Which thread ran the step."""
    return {"thread": threading.current_thread().name}


def exits(params: dict) -> dict:
    """Record that it ran (params["log"]), then end the step's thread with SystemExit."""
    with open(params["log"], "a") as f:
        f.write("exiting\n")
    raise SystemExit(3)
