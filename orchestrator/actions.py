"""Side effects of steps: call a Python task, run a process. Retries and timeouts live here."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import tenacity
from langgraph.errors import GraphBubbleUp

from orchestrator.errors import StepFailed, StepTimeout, TaskNotStopped
from orchestrator.output_tail import read_tail
from orchestrator.workflow.definitions import PythonAction, RetryPolicy, ShellAction
from orchestrator.workflow.expressions import render_argv

TAIL_CHARS = 4000
STOP_GRACE_S = 60.0  # at most this long for a python task past its timeout to return


@dataclass
class StepContext:
    """What a Python task may take as keyword arguments: `params`, `needs`, `ctx`."""

    run_id: str
    step_id: str
    params: Mapping[str, Any]
    needs: Mapping[str, Mapping[str, Any]]
    attempt: int = 1
    # What the workflow passes to the step (`env:`), as a shell step's environment has it.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Set by the engine: asks a person mid-step and returns the answer (see orchestrator.gates).
    asker: Callable[..., Any] | None = field(default=None, repr=False)
    _asked: int = field(default=0, repr=False)
    # Set when this attempt ran past its timeout or its run was cancelled: a long task checks
    # `ctx.cancelled.is_set()` (or waits on it) and returns. Python cannot stop a thread.
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def ask(self, kind: str, message: str, **spec: Any) -> Any:
        """Ask a person (kind: approval, decision, input); the run pauses until they answer.

        `spec` takes the keys of that YAML gate (options=["a", "b"], deadline="1h", ...)
        with the same defaults; an unknown kind or a bad key raises StepFailed.
        """
        if self.asker is None:
            raise StepFailed("this step cannot ask a person: it is not run by the orchestrator")
        self._asked += 1
        return self.asker(kind, message, n=self._asked, **spec)


def call_python(action: PythonAction, ctx: StepContext, timeout_s: float | None) -> dict:
    fn, wants = task_signature(action.target)
    offered = {"params": dict(ctx.params), "needs": ctx.needs, "ctx": ctx}
    kwargs = {k: v for k, v in offered.items() if k in wants}
    result = _with_timeout(lambda: fn(**kwargs), timeout_s, action.target, ctx.cancelled)
    outputs = result if isinstance(result, dict) else {"result": result}
    try:
        return json.loads(json.dumps(outputs))
    except (TypeError, ValueError) as exc:
        raise StepFailed(
            f"{action.target} returned outputs that are not JSON ({exc}); return plain "
            "dicts, lists, strings and numbers"
        ) from exc


@functools.lru_cache(maxsize=1024)
def task_signature(target: str) -> tuple[Callable[..., Any], frozenset[str]]:
    """The task function and which of params/needs/ctx it takes (looked up once)."""
    fn = _resolve(target)
    try:
        accepted = inspect.signature(fn).parameters
    except (TypeError, ValueError) as exc:  # built-ins written in C have no signature
        raise StepFailed(
            f"task {target} has no signature Python can read (a built-in?): wrap it in a "
            "function of your own that takes `params`, `needs` or `ctx`"
        ) from exc
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return fn, frozenset({"params", "needs", "ctx"})
    return fn, frozenset(accepted)


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise StepFailed(f"cannot load task {target}: {exc}") from exc
    except Exception as exc:  # the module's own code failed as it was imported
        raise StepFailed(
            f"cannot load task {target}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(fn):
        raise StepFailed(f"task {target} is not a function")
    return fn


def _with_timeout(
    call: Callable[[], Any], timeout_s: float | None, what: str, cancelled: threading.Event
) -> Any:
    """Run `call` in its own thread for at most `timeout_s`; past it, set `cancelled` and
    give the task as long again (at most STOP_GRACE_S) to return, so the next attempt
    never runs beside it. A task that still runs then fails the step for good."""
    if timeout_s is None:
        return call()
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # LangGraph's interrupt() reads the node's context

    def target() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # handed over to the waiting thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"opsloop-task-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not worker.is_alive():
        if "error" in box:
            raise box["error"]
        return box["value"]
    cancelled.set()
    grace = min(timeout_s, STOP_GRACE_S)
    worker.join(grace)
    if worker.is_alive():  # a thread cannot be killed: it is abandoned, and no retry starts
        raise TaskNotStopped(
            f"{what} did not finish within {timeout_s:g} s and did not stop within {grace:g} s "
            "of being told (ctx.cancelled); it still runs in the bot's process, so the step "
            "is not retried. Have the task check ctx.cancelled and return"
        )
    raise StepTimeout(f"{what} did not finish within {timeout_s:g} s (told to stop, it stopped)")


def run_shell(
    action: ShellAction,
    context: Mapping[str, Any],
    timeout_s: float | None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
    *,
    env: Mapping[str, str],
) -> dict:
    """Run the step's argv with exactly `env` (orchestrator.step_env), never the bot's."""
    argv = render_argv(list(action.argv), context)
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            stdin=subprocess.DEVNULL, env=dict(env),
        )  # fmt: skip
    except OSError as exc:
        raise StepFailed(f"cannot start {argv[0]!r}: {exc.strerror}") from exc
    if on_start is not None:
        on_start(proc)
    # Streamed into bounded tails, never held whole: memory stays flat whatever a step prints.
    out, err = read_tail(proc.stdout, TAIL_CHARS), read_tail(proc.stderr, TAIL_CHARS)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        proc.wait()
        out.join(), err.join()
        raise StepTimeout(f"{argv[0]} was killed after {timeout_s:g} s") from None
    out.join(), err.join()
    outputs = {"exit_code": proc.returncode, "stdout": out.text(), "stderr": err.text()}
    if proc.returncode != 0:
        raise StepFailed(
            f"{argv[0]} exited with {proc.returncode}: {err.text().strip()[-500:]}",
            outputs=outputs,
        )
    return outputs


def kill_process_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def with_retries(
    policy: RetryPolicy, attempt: Callable[[], dict], before: Callable[[int], None]
) -> dict:
    """Run `attempt` until it succeeds or the policy gives up; `before(n)` persists attempt n."""
    if policy.attempts <= 1:  # the common case: no retry machinery per step
        before(1)
        return attempt()

    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, GraphBubbleUp | TaskNotStopped):  # a pause; a task still running
            return False
        kind = "timeout" if isinstance(exc, StepTimeout) else "error"
        return kind in policy.on

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(policy.attempts, 1)),
        wait=lambda state: policy.delay(state.attempt_number),
        retry=tenacity.retry_if_exception(retryable),
        before=lambda state: before(state.attempt_number),
        reraise=True,
    )
    return retrying(attempt)
