"""Workflow definitions: plain, immutable values built by `orchestrator.workflow.loader`.

Nothing here reads files, evaluates expressions or runs anything; the loader
validates a YAML file once and produces these, and the scheduler interprets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from orchestrator.workflow.critical_path import path_lengths

ParamType = Literal["string", "int", "bool", "choice"]
FieldType = Literal["text", "number", "choice", "multiline"]
StepKind = Literal["python", "shell", "approval", "decision", "input", "report"]

STEP_KINDS: tuple[str, ...] = ("python", "shell", "approval", "decision", "input", "report")
GATE_KINDS: frozenset[str] = frozenset({"approval", "decision", "input"})
RETRY_ON: frozenset[str] = frozenset({"error", "timeout"})


@dataclass(frozen=True)
class ParamSpec:
    """A run parameter; `default` is None when the parameter has no default."""

    name: str
    type: ParamType = "string"
    required: bool = False
    default: Any = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed python/shell step is tried, and how long to wait in between."""

    attempts: int = 1
    backoff_s: float = 0.0
    on: frozenset[str] = frozenset({"error"})

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) before the next."""
        return self.backoff_s * 2 ** max(attempt - 1, 0)


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
class EnvValue:
    """One variable a workflow passes to its steps: a literal `value`, or the value of the
    bot's variable `from_env` read when the step starts (docs/security.md)."""

    name: str
    value: str | None = None
    from_env: str | None = None


@dataclass(frozen=True)
class Access:
    """Who may start a workflow, from which channels, and who besides the requester and
    admins may cancel it or retry its steps; None means anyone / any channel."""

    run: Approvers | None = None
    channels: tuple[str, ...] | None = None
    cancel: Approvers = Approvers()
    retry: Approvers = Approvers()


@dataclass(frozen=True)
class PythonAction:
    """Call `package.module:function` with keyword arguments `params` and `needs`."""

    target: str


@dataclass(frozen=True)
class ShellAction:
    """Run an argv list directly (never through a shell); elements may hold placeholders."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class ReportAction:
    """The ops report of the last `since_s` s (of `workflows`, or all) over the runs of the
    run's channel and of `channels` ("*": every run), posted there; outputs: the figures."""

    since_s: float = 7 * 86400.0
    workflows: tuple[str, ...] = ()
    chart: bool = False  # a PNG posted with it
    channels: tuple[str, ...] = ()


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


Action = PythonAction | ShellAction | ReportAction | ApprovalGate | DecisionGate | InputGate

_KIND_OF: dict[type, StepKind] = {
    PythonAction: "python",
    ShellAction: "shell",
    ApprovalGate: "approval",
    DecisionGate: "decision",
    InputGate: "input",
    ReportAction: "report",
}


@dataclass(frozen=True)
class Step:
    """One node of the workflow graph; `line` is where it starts in the source file."""

    id: str
    action: Action
    needs: tuple[str, ...] = ()
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float | None = None
    continue_on_error: bool = False
    idempotent: bool = False
    auto_approve_if: str | None = None
    env: tuple[EnvValue, ...] = ()
    line: int = 0

    @property
    def kind(self) -> StepKind:
        """ "python", "shell", "approval", "decision", "input" or "report"."""
        return _KIND_OF[type(self.action)]

    @property
    def is_gate(self) -> bool:
        """True for steps that wait for a person."""
        return self.kind in GATE_KINDS


OVERLAPS: tuple[str, ...] = ("skip", "allow", "cancel_previous")


@dataclass(frozen=True)
class ScheduleSpec:
    """When a workflow starts itself: a crontab in a time zone, with the run's params.

    `id` is "<workflow>/<key>", where key is the `id:` written or the 1-based position in
    `schedules:`; it is the schedule's identity, so history and pause state survive an
    edit. `params` are (name, value) pairs as written (values checked at load);
    `overlap` says what a fire does while the previous run still runs; a fire more
    than `catchup_s` late counts as missed instead of running.
    """

    id: str
    cron: str
    timezone: str = "UTC"
    params: tuple[tuple[str, Any], ...] = ()
    channel: str | None = None
    overlap: str = "skip"
    catchup_s: float = 0.0
    pause_after_failures: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Workflow:
    """A validated workflow; `digest` is the sha256 of `text`, the source it was loaded from
    (a run keeps the version it started with: storage's workflow_definition)."""

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    steps: tuple[Step, ...]
    max_parallel: int | None = None
    schedules: tuple[ScheduleSpec, ...] = ()
    env: tuple[EnvValue, ...] = ()
    access: Access = Access()
    source: str = ""
    digest: str = ""
    text: str = field(default="", repr=False, compare=False)

    @cached_property
    def start_order(self) -> tuple[Step, ...]:
        """The steps, longest chain still ahead first, then file order: ready steps start
        in this order when they outnumber the free slots (critical_path.py)."""
        length = path_lengths({s.id: s.needs for s in self.steps})
        return tuple(sorted(self.steps, key=lambda s: -length[s.id]))  # stable sort

    @cached_property
    def by_id(self) -> dict[str, Step]:  # a run's passes look steps up by id, per step
        return {s.id: s for s in self.steps}

    def step(self, step_id: str) -> Step:
        """The step called `step_id`; KeyError if there is none."""
        if (step := self.by_id.get(step_id)) is None:
            raise KeyError(f"workflow {self.name!r} has no step {step_id!r}")
        return step

    def param(self, name: str) -> ParamSpec:
        """The parameter called `name`; KeyError if there is none."""
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(f"workflow {self.name!r} has no parameter {name!r}")

    def levels(self) -> list[list[str]]:
        """Step ids grouped so that every step comes after all of its needs (file order within)."""
        return topological_levels({s.id: s.needs for s in self.steps})

    def dependents(self, step_id: str) -> tuple[str, ...]:
        """Ids of the steps that directly need `step_id`, in file order."""
        return tuple(s.id for s in self.steps if step_id in s.needs)

    def upstream(self, step_id: str) -> frozenset[str]:
        """Ids of every step that `step_id` needs, directly or through other steps."""
        return frozenset(transitive_needs({s.id: s.needs for s in self.steps}, step_id))


def topological_levels(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Kahn's algorithm by levels; needs that are not keys of `graph` are ignored."""
    remaining = {node: {n for n in needs if n in graph} for node, needs in graph.items()}
    levels: list[list[str]] = []
    while remaining:
        ready = [node for node, needs in remaining.items() if not needs]
        if not ready:
            raise ValueError(f"cycle among steps: {' -> '.join(find_cycle(graph) or [])}")
        levels.append(ready)
        for node in ready:
            del remaining[node]
        for needs in remaining.values():
            needs.difference_update(ready)
    return levels


def transitive_needs(graph: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Everything `node` needs directly or indirectly; safe on cycles and unknown ids."""
    seen, stack = set[str](), list(graph.get(node, ()))
    while stack:
        current = stack.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        stack.extend(graph[current])
    return seen


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a closed path `[a, b, c, a]` (a needs b needs c needs a), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    for start in graph:
        if state.get(start):
            continue
        path, iters, state[start] = [start], [iter(graph[start])], 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif nxt in graph and state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt in graph and not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph[nxt]))
    return None
