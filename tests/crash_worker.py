"""A process the crash tests kill with SIGKILL: it drives runs until RUNS of them are done.

    python tests/crash_worker.py DB_URL WORKFLOW_FILE EFFECTS_FILE RUNS
    python tests/crash_worker.py --fork-server DB_URL WORKFLOW_FILE EFFECTS_FILE RUNS LOG_FILE

On start it recovers whatever a killed predecessor left unfinished
(`Orchestrator.start()`), then, one run at a time, starts runs of the workflow
and plays the people: it approves gates as UAPPROVER and answers every
recovery question with "retry" as UOPERATOR, an admin. Steps append to EFFECTS_FILE
(tests/engine_tasks.py:effect, or the shell steps of tests/test_crash.py, which
find the file in CRASH_TEST_LOG). Exit status 0 once RUNS runs have finished.

The second form is what tests/test_crash.py starts. Importing the orchestrator
takes seconds, longer than most of a worker's lives, so this process imports it
once and forks a fresh worker for each life (`serve_forks`). It is also the
workers' subreaper: a shell step runs in its own session and outlives a worker
killed with SIGKILL, and the test waits until such leftovers have ended too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback

from orchestrator import interactions, runs
from orchestrator.engine import Orchestrator
from orchestrator.workflow.gate_definitions import Approvers
from orchestrator.workflow.loader import load_workflow
from storage.engine import create_engine, read_transaction
from storage.schema import setup

REQUESTER, APPROVER, OPERATOR = "URUNNER", "UAPPROVER", "UOPERATOR"
TIMEOUT_S = 60.0
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def answer_pending(orch: Orchestrator) -> None:
    """Approve open gates and retry steps that a crash interrupted."""
    with read_transaction(orch.engine) as conn:
        pending = interactions.pending_interactions(conn)
    for row in pending:
        if row["purpose"] == "recovery":
            orch.decide(row["id"], OPERATOR, "retry")
        else:
            orch.decide(row["id"], APPROVER, "approve")


def main(db_url: str, workflow_file: str, effects: str, total: int) -> int:
    os.environ["CRASH_TEST_LOG"] = effects
    engine = create_engine(db_url)
    setup(engine)
    workflow = load_workflow(workflow_file)
    orch = Orchestrator(engine, {workflow.name: workflow}, max_workers=8,
                        admins=Approvers(users=(OPERATOR,)))  # fmt: skip
    orch.start()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with read_transaction(engine) as conn:
            unfinished = runs.unfinished_run_ids(conn)
            started = len(runs.list_runs(conn, limit=total + 1))
        if not unfinished:
            if started >= total:
                orch.close()
                return 0
            orch.start_run(workflow.name, {}, started_by=REQUESTER)
            continue
        for run_id in unfinished:
            if orch.wait(run_id, timeout=TIMEOUT_S).status == "waiting":
                answer_pending(orch)
    print(f"crash_worker: runs still unfinished after {TIMEOUT_S} s", file=sys.stderr)
    return 1


def serve_forks(args: list[str], log_file: str) -> int:
    """Answer one command a line on stdin, one reply a line on stdout, until EOF.

    start      fork a worker running main(*args); reply its pid
    poll PID   reply "running", or its exit status (negative: killed by that signal)
    reap PID   wait until the worker and every process it left behind have ended;
               reply its exit status
    At EOF, SIGKILL the workers still alive, reap them and exit.
    """
    subreaper = _become_subreaper()
    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    alive: set[int] = set()
    ended: dict[int, int] = {}  # worker pid -> exit status

    def wait(pid: int, block: bool) -> int | None:
        if pid in alive:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done:
                alive.discard(pid)
                ended[pid] = os.waitstatus_to_exitcode(status)
        return ended.get(pid)

    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "start":
            pid = _fork_worker(args, log_fd)
            alive.add(pid)
            reply = str(pid)
        elif command == "poll":
            status = wait(int(arg), block=False)
            reply = "running" if status is None else str(status)
        elif command == "reap":
            reply = str(wait(int(arg), block=True))
            if subreaper and not alive:
                _reap_all()
        else:
            reply = f"error: unknown command {line.strip()!r}"
        os.write(1, f"{reply}\n".encode())
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap_all()
    return 0


def _fork_worker(args: list[str], log_fd: int) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the worker: stdin and stdout are the server's, so let go of them
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        code = main(args[0], args[1], args[2], int(args[3]))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _become_subreaper() -> bool:
    """Have orphaned descendants re-parented to this process (Linux only), so it can wait
    for them; elsewhere they go to init and `reap` waits for the worker alone."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _reap_all() -> None:
    """Wait for every child (workers, orphans re-parented here) to end."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


if __name__ == "__main__":
    if sys.argv[1] == "--fork-server":
        sys.exit(serve_forks(sys.argv[2:6], sys.argv[6]))
    url, wf_file, effects_file, count = sys.argv[1:5]
    sys.exit(main(url, wf_file, effects_file, int(count)))
