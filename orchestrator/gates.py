"""Gates: who may answer an interaction, what an answer does to it, and what a step sees.

Pure functions over interaction rows; the engine wraps them in transactions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.errors import InvalidAnswer, NotAllowed, StepFailed
from orchestrator.interactions import input_field, option
from orchestrator.protocol import DEADLINE_ANSWER, Directory
from orchestrator.workflow.definitions import GATE_KINDS, Step
from orchestrator.workflow.gate_definitions import ApprovalGate, DecisionGate, InputField, InputGate
from orchestrator.workflow.loader import check_gate
from orchestrator.workflow.numbers import NumberError, parse_number
from storage.statuses import InteractionKind, InteractionStatus

APPROVE_WORDS = frozenset({"approve", "approved", "yes", "y", "ok", "lgtm"})
REJECT_WORDS = frozenset({"reject", "rejected", "no", "n", "deny"})
RECOVERY_OPTIONS = (
    {"value": "retry", "label": "Retry the step"},
    {"value": "skip", "label": "Skip it"},
    {"value": "fail", "label": "Fail it"},
)


@dataclass(frozen=True)
class Outcome:
    """The interaction's state after one answer."""

    status: str
    responses: list[dict[str, Any]]
    answer: Any
    closed: bool


def gate_spec(step: Step, render: Callable[[str], str]) -> dict[str, Any]:
    """Columns of the interaction a gate step opens; `render` fills templates."""
    gate = step.action
    assert isinstance(gate, ApprovalGate | DecisionGate | InputGate)
    return _columns(step.kind, gate, render(gate.message))


def ask_spec(
    kind: str, message: str, options: Mapping[str, Any], params: Collection[str] = ()
) -> dict[str, Any]:
    """Columns of the interaction `ctx.ask` opens; raise StepFailed when it cannot be asked.

    `options` are read by the YAML gate parser, as the keys of a `kind:` gate step, so
    they take the same forms and defaults and fail the same checks; `params` are the
    run's declared params, which `editable_params` may name.
    """
    call = f"ctx.ask({kind!r}, ...)"
    if not isinstance(kind, str) or kind not in GATE_KINDS:
        raise StepFailed(f"{call}: unknown kind; use one of: {', '.join(sorted(GATE_KINDS))}")
    if not isinstance(message, str):
        raise StepFailed(f"{call}: the message must be text, not {type(message).__name__}")
    try:
        gate, problems = check_gate(kind, options, call)
    except (TypeError, ValueError) as exc:  # not JSON values
        hint = "pass text, numbers, true/false, lists and dicts, as in a workflow file"
        raise StepFailed(f"{call}: an option is not a plain value ({exc}); {hint}") from None
    if gate is None:
        details = "; ".join(f"{e.message} (hint: {e.hint})" for e in problems)
        raise StepFailed(f"{call}: {details}")
    unknown = sorted(set(getattr(gate, "editable_params", ())) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise StepFailed(f"{call}: editable_params names {', '.join(unknown)}, which the "
                         f"workflow does not declare; its params: {known}")  # fmt: skip
    # The message is the task's own text, not a template (an f-string does that),
    # so it went around the template check above and is shown as written.
    return _columns(kind, gate, message)


def _columns(
    kind: str, gate: ApprovalGate | DecisionGate | InputGate, prompt: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": kind,
        "prompt": prompt,
        "allowed_users": list(gate.approvers.users),
        "allowed_groups": list(gate.approvers.groups),
        "allow_requester": gate.allow_requester,
        "required_approvals": getattr(gate, "required", 1),
        "on_deadline": gate.on_deadline,
        "deadline_s": gate.deadline_s,
        "remind_every_s": gate.remind_every_s,
        "notify": gate.notify,
        "editable_params": list(getattr(gate, "editable_params", ())),
    }
    if gate.escalate is not None:
        spec["escalate_after_s"] = gate.escalate.after_s
        spec["escalate_to"] = {"users": list(gate.escalate.users),
                               "groups": list(gate.escalate.groups)}  # fmt: skip
    if isinstance(gate, DecisionGate):
        spec["options"] = [{"value": o.value, "label": o.label} for o in gate.options]
        if gate.on_deadline == "default":
            spec["on_deadline"] = f"default:{gate.default}"
    if isinstance(gate, InputGate):
        spec["fields"] = [
            {"name": f.name, "type": f.type, "required": f.required,
             "choices": list(f.choices), "label": f.label}
            for f in gate.fields
        ]  # fmt: skip
    return spec


def person(user: str) -> str:
    """A user id as given, trimmed; InvalidAnswer if it is empty or has spaces inside.

    Ids are compared without regard to case (`same_person`): `u0abc` and ` U0ABC`
    are the same person, or a requester could approve their own run, or one person
    count twice toward a quorum, by spelling their id differently."""
    text = user.strip() if isinstance(user, str) else ""
    if not text or any(c.isspace() for c in text):
        raise InvalidAnswer(f"{user!r} is not a user id; give one like U012ABC (--as USER)")
    return text


def person_key(user: str) -> str:
    """What two spellings of one person's id have in common (see `person`)."""
    return user.strip().casefold()


def same_person(a: str, b: str) -> bool:
    return person_key(a) == person_key(b)


def check_allowed(row: Mapping[str, Any], user: str, requester: str, directory: Directory) -> None:
    """Raise NotAllowed unless `user` may answer the interaction `row`."""
    if row["purpose"] == "recovery":  # whoever may retry the run (access.py), requester too
        if listed(user, row["allowed_users"] or (), row["allowed_groups"] or (), directory):
            return
        raise NotAllowed(f"{user} may not answer this; only whoever may retry the run may")
    if same_person(user, requester) and not row["allow_requester"]:
        raise NotAllowed(f"{user} started this run and this gate needs someone else to answer it")
    users = set(row["allowed_users"] or ())
    groups = list(row["allowed_groups"] or ())
    if listed(user, users, groups, directory):
        return
    who = ", ".join([*sorted(users), *(f"group {g}" for g in groups)])
    raise NotAllowed(f"{user} may not answer this; it is for {who}")


def listed(user: str, users: Collection[str], groups: Iterable[str], directory: Directory) -> bool:
    """True if the gate names nobody (anyone may answer) or names `user`, directly or by group."""
    groups = list(groups)
    if not users and not groups:
        return True
    key = person_key(user)
    return any(key == person_key(u) for u in users) or any(
        key == person_key(m) for g in groups for m in directory.members(g)
    )


def apply_answer(
    row: Mapping[str, Any], user: str, answer: Any, comment: str | None, now: datetime
) -> Outcome:
    """What the interaction becomes when `user` answers `answer`; raise InvalidAnswer."""
    responses = list(row["responses"] or ())
    entry = {"user": user, "at": now.isoformat(), "comment": comment}
    kind = row["kind"]
    if kind == InteractionKind.APPROVAL:
        verdict = str(answer).strip().lower()
        if verdict in REJECT_WORDS:
            responses.append({**entry, "answer": "reject"})
            return Outcome(InteractionStatus.REJECTED, responses, "reject", True)
        if verdict not in APPROVE_WORDS:
            raise InvalidAnswer(f"answer {answer!r} is not approve or reject")
        if any(same_person(r["user"], user) and r["answer"] == "approve" for r in responses):
            raise InvalidAnswer(f"{user} already approved; it needs someone else")
        responses.append({**entry, "answer": "approve"})
        approvals = len({person_key(r["user"]) for r in responses if r["answer"] == "approve"})
        if approvals >= row["required_approvals"]:
            return Outcome(InteractionStatus.APPROVED, responses, "approve", True)
        return Outcome(InteractionStatus.PENDING, responses, None, False)
    if kind == InteractionKind.DECISION:
        values = [option(o).value for o in row["options"] or ()]
        if answer not in values:
            close = difflib.get_close_matches(str(answer), values, n=1, cutoff=0.6)
            if not close:  # a case slip (`Canary` for `canary`) is close too
                close = [v for v in values if v.lower() == str(answer).strip().lower()]
            mean = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidAnswer(
                f"{answer!r} is not one of the options; {mean}the options: {', '.join(values)}"
            )
        responses.append({**entry, "answer": answer})
        return Outcome(InteractionStatus.DECIDED, responses, answer, True)
    values = coerce_input([input_field(f) for f in row["fields"] or ()], answer)
    responses.append({**entry, "answer": values})
    return Outcome(InteractionStatus.SUBMITTED, responses, values, True)


def coerce_input(fields: Iterable[InputField], answer: Any) -> dict[str, Any]:
    """Check submitted input values against the gate's fields."""
    if not isinstance(answer, Mapping):
        raise InvalidAnswer(
            'input answers are a mapping of field to value, e.g. {"ticket": "OPS-1"}'
        )
    known = {f.name: f for f in fields}
    unknown = sorted(set(answer) - set(known))
    if unknown:
        raise InvalidAnswer(f"unknown fields {unknown}; the fields are {sorted(known)}")
    values: dict[str, Any] = {}
    for name, field in known.items():
        raw = answer.get(name)
        if raw in (None, ""):
            if field.required:
                raise InvalidAnswer(f"field {name!r} is required")
            values[name] = None
            continue
        values[name] = _coerce_field(name, field, raw)
    return values


def _coerce_field(name: str, field: InputField, raw: Any) -> Any:
    if field.type == "number":  # one rule with Slack's forms (workflow/numbers.py)
        try:
            return parse_number(raw)
        except NumberError as exc:
            raise InvalidAnswer(f"field {name!r}: {exc}") from None
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise InvalidAnswer(f"field {name!r} takes text, not {type(raw).__name__} {raw!r}")
    if field.type == "choice" and raw not in field.choices:
        raise InvalidAnswer(f"field {name!r} must be one of {list(field.choices)}, not {raw!r}")
    return str(raw)


def deadline_outcome(row: Mapping[str, Any], now: datetime) -> Outcome:
    """What the interaction becomes when its deadline passes unanswered."""
    action = row["on_deadline"] or "fail"
    responses = [*(row["responses"] or ()), {"user": "opsloop", "at": now.isoformat(),
                                              "answer": f"{DEADLINE_ANSWER} {action}"}]  # fmt: skip
    if action == "approve":
        return Outcome(InteractionStatus.APPROVED, responses, "approve", True)
    if action == "reject":
        return Outcome(InteractionStatus.REJECTED, responses, "reject", True)
    if action.startswith("default:"):
        return Outcome(InteractionStatus.DECIDED, responses, action.partition(":")[2], True)
    return Outcome(InteractionStatus.EXPIRED, responses, None, True)


def step_outputs(kind: str, resolution: Mapping[str, Any]) -> dict[str, Any]:
    """A gate step's outputs once its interaction closed; raise StepFailed when it says no."""
    status, by = resolution["status"], resolution.get("by")
    if status == InteractionStatus.EXPIRED:
        raise StepFailed("nobody answered before the deadline")
    if status == InteractionStatus.CANCELLED:
        raise StepFailed("the interaction was cancelled")
    if kind == InteractionKind.APPROVAL:
        approvers = [r["user"] for r in resolution.get("responses", ()) if r["answer"] == "approve"]
        if status == InteractionStatus.REJECTED:
            reason = next(
                (r.get("comment") for r in reversed(resolution.get("responses", ()))), None
            )
            raise StepFailed(f"rejected by {by}" + (f": {reason}" if reason else ""))
        return {"approved": True, "approved_by": approvers}
    if kind == InteractionKind.DECISION:
        return {"choice": resolution["value"], "decided_by": by}
    return {**(resolution["value"] or {}), "submitted_by": by}


def deadline_at(now: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else now + timedelta(seconds=seconds)
