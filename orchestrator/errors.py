"""Errors raised by the orchestrator on purpose.

    OrchestratorError
     +-- DefinitionError     a workflow file we cannot use: path, line, message, hint
     +-- ExpressionError     a condition or template that does not parse or cannot be evaluated
     +-- ParamError          run parameters that are missing, unknown or of the wrong type

Every error carries a hint that says how to fix it, because the people who read
these messages are editing a YAML file or typing a Slack command, not reading code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class OrchestratorError(Exception):
    """Base class of every error the orchestrator raises on purpose."""


class DefinitionError(OrchestratorError):
    """A workflow definition is invalid; `str()` reads `path:line: message (hint: ...)`."""

    def __init__(self, path: str, line: int, message: str, hint: str = "") -> None:
        super().__init__(path, line, message, hint)
        self.path = str(path)
        self.line = line
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ExpressionError(OrchestratorError):
    """A condition or template is malformed, or failed while it was evaluated."""

    def __init__(self, message: str, expression: str = "", hint: str = "") -> None:
        super().__init__(message, expression, hint)
        self.message = message
        self.expression = expression
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class ParamProblem:
    """One thing wrong with one run parameter."""

    name: str
    message: str
    hint: str


class ParamError(OrchestratorError):
    """Run parameters were rejected; `problems` lists every one of them, not just the first."""

    def __init__(self, problems: Sequence[ParamProblem]) -> None:
        super().__init__(tuple(problems))
        self.problems = tuple(problems)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'' if count == 1 else 's'} with the parameters:"
        lines = [f"- {p.name}: {p.message} (hint: {p.hint})" for p in self.problems]
        return "\n".join([head, *lines])


# -- running workflows ---------------------------------------------------------
#     OrchestratorError
#      +-- UnknownWorkflow     no workflow of that name (the message names a near one)
#      +-- NotFound            no run or interaction with that id
#      +-- NotAllowed          this person may not answer this interaction (audited)
#      +-- AlreadyAnswered     the interaction is closed; says who answered
#      +-- InvalidAnswer       the answer is not one the interaction accepts
#      +-- StepFailed          raised inside a step: the step fails with this message
#           +-- StepTimeout    the step ran past its timeout


class UnknownWorkflow(OrchestratorError):
    """No workflow has that name; `close` is the known name nearest to it, if one is near.

    The message names neither all the known workflows (with many, a wall of text) nor
    where to see them: each front end adds its own pointer (`/ops list`, ...)."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        self.name, self.close = name, (close[0] if close else None)
        maybe = f"; did you mean {self.close!r}?" if self.close else ""
        super().__init__(f"no workflow named {name!r}{maybe}")


class NotFound(OrchestratorError):
    """No run or interaction has that id."""


class NotAllowed(OrchestratorError):
    """The person may not answer this interaction."""


class RateLimited(NotAllowed):
    """The person started too many runs just now; `retry_in_s` says when they may again."""

    def __init__(self, message: str, retry_in_s: int) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class InvalidAnswer(OrchestratorError):
    """The answer is not one the interaction accepts; the message lists what is."""


class AlreadyAnswered(OrchestratorError):
    """The interaction closed before this answer arrived."""

    def __init__(self, interaction_id: str, status: str, answered_by: str | None) -> None:
        who = f" by {answered_by}" if answered_by else ""
        super().__init__(f"interaction {interaction_id} was already {status}{who}")
        self.interaction_id = interaction_id
        self.status = status
        self.answered_by = answered_by


class StepFailed(OrchestratorError):
    """A step failed; `outputs` keeps what it produced (exit code, output tails)."""

    def __init__(self, message: str, outputs: dict | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs


class StepTimeout(StepFailed):
    """A step ran past its timeout."""


class TaskNotStopped(StepFailed):
    """A python task past its timeout did not return when told to: it still runs in its
    thread, so the step fails and is not retried (attempts must never overlap)."""
