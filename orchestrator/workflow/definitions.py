"""Workflow definitions: plain, immutable values built by `orchestrator.workflow.loader`.

Nothing here reads files, evaluates expressions or runs anything; the loader
validates a YAML file once and produces these, and the scheduler interprets them.
The gates' values live in `gate_definitions`, the graph walks in `step_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from orchestrator.workflow.critical_path import path_lengths
from orchestrator.workflow.gate_definitions import (
    ApprovalGate,
    Approvers,
    DecisionGate,
    InputGate,
)
from orchestrator.workflow.step_graph import topological_levels, transitive_needs

ParamType = Literal["string", "int", "bool", "choice"]
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
    cancel: Approvers = field(default_factory=Approvers)
    retry: Approvers = field(default_factory=Approvers)


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

    @cached_property
    def positions(self) -> dict[str, int]:  # file order, for lists of step ids
        return {s.id: i for i, s in enumerate(self.steps)}

    def position(self, step_id: str) -> int:
        """Where `step_id` is in the file (0 first)."""
        return self.positions[step_id]

    @cached_property
    def needs_graph(self) -> dict[str, tuple[str, ...]]:
        return {s.id: s.needs for s in self.steps}

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
        return frozenset(transitive_needs(self.needs_graph, step_id))
