"""`opsloop plan`: a workflow's DAG as levels, who each gate will ask, and with params a
dry run: which steps a run would run, skip or wait at (orchestrator/workflow/dry_run.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.schedules import next_fire
from orchestrator.workflow.definitions import ParamSpec, ScheduleSpec, Step, Workflow
from orchestrator.workflow.dry_run import predict
from orchestrator.workflow.gate_definitions import Approvers
from orchestrator.workflow.params import coerce_params

NEXT_FIRES = 3


def format_plan(workflow: Workflow, now: datetime | None = None) -> str:
    """The DAG as levels and who each gate asks; with `now`, each schedule's next fires."""
    lines = [f"{workflow.name}: {workflow.description}".rstrip(": ")]
    if workflow.max_parallel:
        lines.append(f"at most {workflow.max_parallel} steps at once")
    if workflow.params:
        lines.append("params:")
        lines += [f"  {_param(p)}" for p in workflow.params]
    lines.append("steps (each starts as soon as what it needs has finished):")
    for n, level in enumerate(workflow.levels(), 1):
        lines.append(f"  level {n}:")
        lines += [f"    {_step(workflow.step(s))}" for s in level]
    if workflow.schedules and now is not None:
        lines.append("schedules:")
        lines += [line for spec in workflow.schedules for line in _schedule(spec, now)]
    return "\n".join(lines)


def plan_text(workflow: Workflow, raw: Mapping[str, Any], now: datetime | None = None) -> str:
    """`plan`'s whole answer (CLI and `/ops plan`): the DAG, and with params (checked as a
    run checks them: ParamError) or none required, the dry run."""
    params = coerce_params(workflow, raw) if raw else None
    text = format_plan(workflow, now)
    if params is None and any(p.required for p in workflow.params):
        return (
            text + "\n\n(give key=value params to see which steps a run would run, skip or wait at)"
        )
    return text + "\n\n" + format_dry_run(workflow, params or coerce_params(workflow, {}))


def format_dry_run(workflow: Workflow, params: Mapping[str, Any]) -> str:
    """What a run with `params` (checked, as coerce_params returns them) would do."""
    given = " ".join(f"{k}={v!r}" for k, v in params.items()) or "no params"
    lines = [f"a run of {workflow.name} with {given} (nothing was started):"]
    width = max(len(step.id) for step in workflow.steps)
    for guess in predict(workflow, params):
        step = workflow.step(guess.step_id)
        if guess.verdict == "runs":
            text = "runs"
        elif guess.verdict == "waits":
            text = f"waits for {_asks(step)}"
            if step.auto_approve_if:
                text += f"; passes by itself if {step.auto_approve_if}"
        elif guess.verdict == "skipped":
            text = f"skipped: {guess.why}"
        else:
            text = f"maybe: {guess.why}"
        lines.append(f"  {guess.step_id:<{width}}  [{step.kind}] {text}")
    return "\n".join(lines)


def _schedule(spec: ScheduleSpec, now: datetime) -> list[str]:
    params = " ".join(f"{k}={v}" for k, v in spec.params)
    lines = [f"  {spec.id}: {spec.cron} ({spec.timezone}) {params}".rstrip()]
    when, zone = now, ZoneInfo(spec.timezone)
    for _ in range(NEXT_FIRES):
        nxt = next_fire(spec, when)
        if nxt is None:
            break
        lines.append(f"    next {nxt.astimezone(zone):%Y-%m-%d %H:%M %Z} ({nxt:%H:%MZ})")
        when = nxt
    return lines


def _param(spec: ParamSpec) -> str:
    kind = f"choice of {'|'.join(spec.choices)}" if spec.choices else spec.type
    bits = ["required" if spec.required else f"default {spec.default!r}"]
    if spec.pattern:
        bits.append(f"matching {spec.pattern}")
    text = f"{spec.name} ({kind}, {', '.join(bits)})"
    return f"{text}: {spec.help}" if spec.help else text


def _step(step: Step) -> str:
    text = f"{step.id} [{step.kind}]"
    if step.needs:
        text += f" after {', '.join(step.needs)}"
    if step.condition:
        text += f" if {step.condition}"
    if step.is_gate:
        text += f"\n      asks {_asks(step)}"
        if step.auto_approve_if:
            text += f"\n      passes without a person if {step.auto_approve_if}"
    return text


def _asks(step: Step) -> str:
    gate = step.action
    approvers: Approvers = gate.approvers  # type: ignore[union-attr]
    who = [*approvers.users, *(f"group {g}" for g in approvers.groups)] or ["anyone"]
    text = ", ".join(who)
    required = getattr(gate, "required", 1)
    if required > 1:
        text += f" ({required} distinct approvals)"
    if not gate.allow_requester:  # type: ignore[union-attr]
        text += ", not the person who started the run"
    if gate.deadline_s:  # type: ignore[union-attr]
        deadline = _span(gate.deadline_s)  # type: ignore[union-attr]
        text += f"; deadline {deadline}, then {gate.on_deadline}"  # type: ignore[union-attr]
    return text


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
