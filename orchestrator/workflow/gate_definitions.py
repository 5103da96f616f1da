"""Gate definitions: the steps that wait for a person, and who may answer them.

Plain, immutable values built by `orchestrator.workflow.loader`, like the rest of
`orchestrator.workflow.definitions` (whose `Step.action` may be one of these gates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["text", "number", "choice", "multiline"]


@dataclass(frozen=True)
class Approvers:
    """Who may answer a gate: Slack user ids and user-group ids."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        """True when nobody is listed, which means anyone may answer."""
        return not self.users and not self.groups


@dataclass(frozen=True)
class Option:
    """One answer of a decision gate."""

    value: str
    label: str


@dataclass(frozen=True)
class InputField:
    """One field of an input gate's form."""

    name: str
    type: FieldType = "text"
    required: bool = False
    choices: tuple[str, ...] = ()
    label: str = ""


NOTIFY_MODES: tuple[str, ...] = ("thread", "channel", "dm")


@dataclass(frozen=True)
class Escalation:
    """Who is mentioned when a gate is still open `after_s` seconds after it opened."""

    after_s: float
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Gate:
    """What every gate has: the question, who answers, and its timing.

    `notify` says where the question is posted: the run's thread, the thread and
    the channel, or the thread and a direct message to each listed person.
    """

    message: str
    approvers: Approvers = field(default_factory=Approvers)
    allow_requester: bool = True
    deadline_s: float | None = None
    remind_every_s: float | None = None
    on_deadline: str = "fail"
    notify: str = "thread"
    escalate: Escalation | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalGate(Gate):
    """Wait until `required` distinct people approve, or one rejects; `editable_params`
    lets an approver change those params while approving."""

    required: int = 1
    allow_requester: bool = False
    on_deadline: str = "reject"
    editable_params: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DecisionGate(Gate):
    """Wait until someone picks one of `options`."""

    options: tuple[Option, ...]
    default: str | None = None


@dataclass(frozen=True, kw_only=True)
class InputGate(Gate):
    """Wait until someone fills in a form with `fields`."""

    fields: tuple[InputField, ...]
