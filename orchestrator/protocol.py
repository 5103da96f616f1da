"""The small protocol through which the orchestrator reaches people.

The orchestrator never imports a chat library. It announces what happens to a
`FrontEnd`: the console, a local shell and the Slack bot each implement it,
and any of them can be plugged in. Every call happens after the change it
reports is committed to the database, so a front end may re-read state freely.
Calls come from worker threads: implementations must be thread-safe and quick
(queue slow work, e.g. Slack API calls, instead of doing it inline).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from orchestrator.reports.figures import Report
from orchestrator.workflow.gate_definitions import InputField, Option

# How opsloop's own answer starts when a deadline passed unanswered ("deadline: reject").
DEADLINE_ANSWER = "deadline:"


@dataclass(frozen=True)
class StepView:
    step_id: str
    kind: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    outputs: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at
        return None if end is None else (end - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunView:
    id: str
    workflow: str
    status: str
    params: dict[str, Any]
    started_by: str
    channel: str | None = None
    thread_ts: str | None = None
    error: str | None = None
    steps: tuple[StepView, ...] = ()
    digest: str = ""  # of the workflow version the run started with
    created_at: datetime | None = None  # when the run was started (its first steps were ready)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each step's place in `steps`, by id: a wide run looks steps up by id per change."""
        return {s.step_id: i for i, s in enumerate(self.steps)}

    def step(self, step_id: str) -> StepView:
        """The view of the step called `step_id`; KeyError if the run has none."""
        return self.steps[self.positions[step_id]]

    def with_step(self, step_id: str, **values: Any) -> RunView:
        """This view with one step's fields replaced (a change just committed)."""
        i = self.positions.get(step_id)
        if i is None:
            return self
        steps = self.steps
        steps = (*steps[:i], replace(steps[i], **values), *steps[i + 1 :])
        changed = replace(self, steps=steps)
        changed.__dict__["positions"] = self.positions  # the same steps in the same places
        return changed


@dataclass(frozen=True)
class Response:
    """One answer an interaction received: "approve"/"reject", an option's value, or the
    input form's values; opsloop's own at a deadline (`at_deadline`)."""

    user: str
    answer: Any
    at: datetime | None = None
    comment: str | None = None
    changes: Mapping[str, tuple[Any, Any]] | None = None  # params changed: (before, after)

    @property
    def approves(self) -> bool:
        return self.answer == "approve"

    @property
    def at_deadline(self) -> bool:
        return isinstance(self.answer, str) and self.answer.startswith(DEADLINE_ANSWER)


@dataclass(frozen=True)
class InteractionView:
    """An interaction as front ends see it: typed options, fields and responses (the row's
    JSON is read once, in `orchestrator.interactions.interaction_view`)."""

    id: str
    run_id: str
    step_id: str
    kind: str
    purpose: str
    prompt: str
    status: str
    options: tuple[Option, ...] = ()  # a decision's, or retry/skip/fail for a recovery
    fields: tuple[InputField, ...] = ()  # an input gate's form
    allowed_users: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    required: int = 1
    responses: tuple[Response, ...] = ()
    answer: Any = None
    answered_by: str | None = None
    deadline: datetime | None = None
    answered_at: datetime | None = None
    asked_at: datetime | None = None  # when the question was opened
    allow_requester: bool = True
    on_deadline: str | None = None
    notify: str = "thread"  # thread | channel | dm
    escalate_to: dict[str, list[str]] | None = None  # {"users": [...], "groups": [...]}
    editable_params: tuple[str, ...] = ()

    @cached_property
    def approvers(self) -> tuple[str, ...]:
        """Who approved so far, in order (gates refuse a second approval by one person)."""
        return tuple(dict.fromkeys(r.user for r in self.responses if r.approves))

    @property
    def approvals(self) -> int:
        """How many of the `required` approvals are in."""
        return len(self.approvers)

    @property
    def last_response(self) -> Response | None:
        return self.responses[-1] if self.responses else None

    def option_label(self, value: Any) -> str | None:
        """The label of the option whose value is `value`; None if there is none."""
        return next((o.label for o in self.options if o.value == value), None)


class FrontEnd(Protocol):
    """What the orchestrator tells the people watching a run.

    Optional, told only to a front end that defines it (metrics and tracing do):
    `schedule_started(schedule_id, due, started_at)`, a fire due at `due` started its run.
    """

    def run_started(self, run: RunView) -> None: ...

    def step_changed(self, run: RunView, step: StepView) -> None: ...

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None: ...

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        """A response arrived (quorum progress) or the interaction closed."""

    def reminder(self, run: RunView, interaction: InteractionView) -> None: ...

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        """Still open after the gate's `escalate.after`: tell its escalation contacts."""

    def run_finished(self, run: RunView) -> None: ...

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        """A schedule paused itself after failed runs in a row (pause_after_failures)."""

    def report_ready(
        self, run: RunView, step_id: str, report: Report, chart_png: bytes | None
    ) -> None:
        """A `report:` step computed its figures (and drew its chart): post them."""


class SilentFrontEnd:
    """A front end that tells nobody: for tests, benchmarks and headless workers."""

    def run_started(self, run: RunView) -> None:
        pass

    def step_changed(self, run: RunView, step: StepView) -> None:
        pass

    def interaction_opened(self, run: RunView, interaction: InteractionView) -> None:
        pass

    def interaction_updated(self, run: RunView, interaction: InteractionView) -> None:
        pass

    def reminder(self, run: RunView, interaction: InteractionView) -> None:
        pass

    def escalated(self, run: RunView, interaction: InteractionView) -> None:
        pass

    def run_finished(self, run: RunView) -> None:
        pass

    def schedule_paused(self, schedule_id: str, channel: str | None, reason: str) -> None:
        pass

    def schedule_started(self, schedule_id: str, due: datetime, started_at: datetime) -> None:
        pass

    def report_ready(
        self, run: RunView, step_id: str, report: Report, chart_png: bytes | None
    ) -> None:
        pass


class Directory(Protocol):
    """Who belongs to a group (a Slack user group, an on-call rota...)."""

    def members(self, group: str) -> frozenset[str]: ...


@dataclass(frozen=True)
class StaticDirectory:
    """Groups given up front, e.g. from OPSLOOP_GROUPS="S0ONCALL=U1,U2;S0LEADS=U3"."""

    groups: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> StaticDirectory:
        """`name=U1,U2;name2=U3`; ValueError naming the entry that does not read so."""
        groups: dict[str, frozenset[str]] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, equals, users = (s.strip() for s in part.partition("="))
            members = [u.strip() for u in users.split(",") if u.strip()]
            bad = (
                not equals or not name or not members
                or any(c.isspace() or c in "=:" for c in name)
                or any(c.isspace() or c == "=" for u in members for c in u)
            )  # fmt: skip
            if bad or name in groups:
                why = f"group {name} is given twice" if not bad else f"cannot read {part!r}"
                raise ValueError(f"{why}; write groups as S0ONCALL=U1,U2;S0LEADS=U3")
            if not re.fullmatch(r"S[A-Z0-9]{2,}", name):  # as gates name groups (step_schema)
                raise ValueError(
                    f"group {name!r} cannot be named by a gate, which takes ids shaped like "
                    f"Slack's user groups: write it as S0{re.sub('[^A-Z0-9]', '', name.upper())}"
                    "=... and list that id in the gate's groups"
                )
            groups[name] = frozenset(members)
        return cls(groups)

    def members(self, group: str) -> frozenset[str]:
        return self.groups.get(group, frozenset())
