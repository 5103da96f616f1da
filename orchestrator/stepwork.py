"""What a step does inside its LangGraph node: run its action with retries, or ask a person.

A gate asks once; a python task may ask several times (`ctx.ask`). Asking opens the
interaction row (once, however often the node re-runs) and calls `interrupt()`.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.types import interrupt

from orchestrator import gates, interactions, runs
from orchestrator.actions import StepContext, call_python, run_shell, task_signature, with_retries
from orchestrator.errors import ExpressionError, StepFailed
from orchestrator.planning import condition_context, template_context
from orchestrator.protocol import RunView
from orchestrator.reports.step import run_report
from orchestrator.runs import SYSTEM
from orchestrator.services import Services
from orchestrator.step_env import step_environment
from orchestrator.storage_retry import storage_attempts
from orchestrator.workflow.definitions import PythonAction, ReportAction, Step
from orchestrator.workflow.expressions import compile_condition, render_text
from storage.engine import dialect_insert, write_transaction
from storage.statuses import InteractionStatus, StepStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepHooks:
    """What a step's work reports while it runs, for the runner to act on."""

    process_started: Callable[[subprocess.Popen], None]  # a shell step's process is up
    attempt_started: Callable[[int], None]  # attempt n (> 1) was recorded
    task_started: Callable[[threading.Event], None]  # a python attempt's ctx.cancelled
    # Whether interaction `iid` is known to exist (an answer closed it): not written again.
    opened: Callable[[str], bool] = lambda _iid: False


def can_pause(step: Step) -> bool:
    """Whether a step may wait for a person: a gate, or a python task that takes `ctx`
    (the only way a task can ask). Only such steps need LangGraph's pause and resume;
    a task that cannot be loaded cannot pause either (it fails when it runs)."""
    if step.is_gate:
        return True
    if not isinstance(step.action, PythonAction):
        return False
    try:
        return "ctx" in task_signature(step.action.target)[1]
    except StepFailed:  # every failure to load the task arrives as StepFailed (actions.py)
        return False


def work(
    services: Services, run: RunView, step: Step, thread_id: str, hooks: StepHooks
) -> dict[str, Any]:
    """The body of the step's LangGraph node. Re-runs from the top on resume."""
    if step.is_gate:
        context = template_context(services.workflow_of(run), run)
        if step.auto_approve_if and _auto_approved(services, run, step):
            return {"approved": True, "auto": True}
        spec = gates.gate_spec(step, lambda text: render_text(text, context))
        resolution = ask(services, run, step, thread_id, 1, spec, hooks.opened)
        return gates.step_outputs(step.kind, resolution)
    if isinstance(step.action, ReportAction):
        return run_report(services, run, step.id, step.action)
    env = step_environment(services.workflow_of(run), step, run.id, basics=services.basics)
    ctx = StepContext(
        run_id=run.id, step_id=step.id, params=run.params, env=env,
        needs={n: dict(run.step(n).outputs or {}) for n in step.needs},
        asker=lambda kind, message, n, **options: ask(
            services, run, step, thread_id, n,
            gates.ask_spec(
                kind, message, options, [p.name for p in services.workflow_of(run).params]
            ), hooks.opened,
        ),
    )  # fmt: skip

    timeout_s = services.limits.timeout_of(step.timeout_s)

    def attempt() -> dict[str, Any]:
        if isinstance(step.action, PythonAction):
            ctx.cancelled = threading.Event()  # each attempt is told on its own
            hooks.task_started(ctx.cancelled)
            return call_python(step.action, ctx, timeout_s)
        return run_shell(
            step.action, template_context(services.workflow_of(run), run), timeout_s,
            on_start=hooks.process_started, env=env,
        )  # fmt: skip

    return with_retries(
        step.retry, attempt, lambda n: _attempt(services, run.id, step.id, n, hooks)
    )


def _attempt(services: Services, run_id: str, step_id: str, n: int, hooks: StepHooks) -> None:
    """Persist that attempt `n` starts; the first was recorded when the step was claimed."""
    if n == 1:  # also when a paused step resumes: its attempt goes on
        return
    for attempt in storage_attempts():
        with attempt, write_transaction(services.engine) as conn:
            runs.set_step(
                conn, run_id, step_id, expect=[StepStatus.RUNNING], attempts=n,
                updated_at=services.clock.now(),
            )  # fmt: skip
    hooks.attempt_started(n)


def _auto_approved(services: Services, run: RunView, step: Step) -> bool:
    """Evaluate `auto_approve_if` as an `if` of the gate is: over its needs and upstream."""
    context = condition_context(services.workflow_of(run), run, step.id)
    try:
        approved = compile_condition(step.auto_approve_if or "").evaluate(context)
    except ExpressionError as exc:
        raise StepFailed(f"auto_approve_if failed: {exc}") from exc
    if not approved:
        return False
    for attempt in storage_attempts():
        with attempt, write_transaction(services.engine) as conn:
            runs.audit(
                conn, SYSTEM, "gate.auto_approved", now=services.clock.now(), run_id=run.id,
                step=step.id, condition=step.auto_approve_if,
            )  # fmt: skip
    return True


def ask(
    services: Services,
    run: RunView,
    step: Step,
    thread_id: str,
    n: int,
    spec: Mapping[str, Any],
    opened: Callable[[str], bool] = lambda _iid: False,
) -> Mapping[str, Any]:
    """Open an interaction (once, whatever re-runs) and pause until it closes.

    `spec` comes from `gates.gate_spec` or `gates.ask_spec`, so a gate step and
    `ctx.ask` open the same interaction for the same options. `opened(iid)`: the
    interaction is known to exist (the step resumes with its answer): no write."""
    iid = interactions.interaction_id(thread_id, n)
    if opened(iid):
        return interrupt({"interaction_id": iid})
    now = services.clock.now()
    deadline = gates.deadline_at(now, spec.get("deadline_s"))
    every = spec.get("remind_every_s")
    values = {
        "id": iid, "run_id": run.id, "workflow": run.workflow, "step_id": step.id,
        "kind": spec["kind"],
        "purpose": "gate", "prompt": spec["prompt"], "options": spec.get("options"),
        "fields": spec.get("fields"), "allowed_users": spec.get("allowed_users") or [],
        "allowed_groups": spec.get("allowed_groups") or [],
        "required_approvals": spec["required_approvals"],
        "allow_requester": spec["allow_requester"],
        "status": InteractionStatus.PENDING, "responses": [], "deadline": deadline,
        "on_deadline": spec.get("on_deadline"),
        "remind_every_s": max(1, round(every)) if every else None,  # whole seconds, at least 1
        "next_reminder_at": gates.deadline_at(now, every), "version": 0, "created_at": now,
        "notify": spec.get("notify") or "thread", "escalate_to": spec.get("escalate_to"),
        "escalate_at": gates.deadline_at(now, spec.get("escalate_after_s")),
        "editable_params": spec.get("editable_params") or None,
    }  # fmt: skip
    for attempt in storage_attempts():
        with attempt, write_transaction(services.engine) as conn:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT through SQLAlchemy,
            # which would audit the question as opened again each time the step re-runs.
            inserted = conn.execute(
                dialect_insert(conn)(interactions.INTERACTIONS).values(values).on_conflict_do_nothing()
                .returning(interactions.INTERACTIONS.c.id)
            ).first()  # fmt: skip
            if inserted is not None:
                runs.audit(conn, SYSTEM, "interaction.opened", now=now, run_id=run.id,
                           interaction_id=iid, step=step.id)  # fmt: skip
    if inserted is not None:
        _warn_if_nobody(services, run, step, values)
    return interrupt({"interaction_id": iid})


def _warn_if_nobody(
    services: Services, run: RunView, step: Step, values: Mapping[str, Any]
) -> None:
    """A question only empty groups may answer would wait silently until its deadline:
    say so when it opens (admins may still answer it; access.py)."""
    if values["allowed_users"] or not values["allowed_groups"]:
        return
    try:
        empty = [g for g in values["allowed_groups"] if not services.directory.members(g)]
    except Exception:  # the directory (Slack) cannot say now: nothing to warn about
        return
    if len(empty) == len(values["allowed_groups"]):
        deadline = values["deadline"]
        log.warning(
            "run %s: step %s asks group(s) %s, which have no known members: nobody can answer "
            "it%s; add members (OPSLOOP_GROUPS or the Slack user group), or an admin "
            "(OPSLOOP_ADMINS) can answer or cancel", run.id, step.id, ", ".join(empty),
            f" before its deadline ({deadline:%Y-%m-%d %H:%M} UTC)" if deadline else "",
        )  # fmt: skip
