"""`/ops` text -> a typed command, and the usage text that goes with every mistake.

Quoting works like a shell (`msg="two words"`), after undoing what Slack does
to the text on the way: &, < and > arrive as HTML entities, and some clients
turn straight quotes into curly ones.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.errors import ParamError
from orchestrator.reports.window import DEFAULT_SINCE, MAX_SINCE
from orchestrator.workflow.loader import parse_duration
from orchestrator.workflow.params import parse_assignments

SLASH_COMMAND = "/ops"

# subcommand -> (arguments, what it does); the order is the order of the help text.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "help": ("[COMMAND]", "show this help, or the help of one command"),
    "list": ("", "the workflows you may run"),
    "run": ("WORKFLOW [key=value ...]", 'start a run; quote values with spaces: msg="two words"'),
    "status": ("[RUN]", "the state of a run (or of the latest runs)"),
    "runs": ("", "recent runs"),
    "pending": ("", "gates waiting for your answer"),
    "cancel": ("RUN", "cancel a run"),
    "retry": ("RUN [STEP]", "retry a run's failed steps, or one step"),
    "audit": ("RUN", "who did what in a run: starts, answers, refusals, cancels, retries"),
    "plan": (
        "WORKFLOW [params]",
        "show a workflow's steps; with key=value params, which would "
        "run, be skipped or wait for whom (nothing is started)",
    ),
    "schedules": ("", "schedules and their next fires; admins may pause or resume them"),
    "report": ("[7d] [WORKFLOW ...]", "the ops report of the last days, of the runs you may see"),
}

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}


@dataclass(frozen=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True)
class ListWorkflows:
    pass


@dataclass(frozen=True)
class Run:
    workflow: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    run_id: str | None = None


@dataclass(frozen=True)
class Runs:
    pass


@dataclass(frozen=True)
class Pending:
    pass


@dataclass(frozen=True)
class Cancel:
    run_id: str


@dataclass(frozen=True)
class Retry:
    run_id: str
    step_id: str | None = None


@dataclass(frozen=True)
class Audit:
    run_id: str


@dataclass(frozen=True)
class Plan:
    workflow: str
    params: dict[str, str] = field(default_factory=dict)  # with them: a dry run


@dataclass(frozen=True)
class Schedules:
    pass


@dataclass(frozen=True)
class ShowReport:
    since_s: float = DEFAULT_SINCE.total_seconds()
    workflows: tuple[str, ...] = ()


Command = (
    Help | ListWorkflows | Run | Status | Runs | Pending | Cancel | Retry | Audit | Plan | Schedules
    | ShowReport
)  # fmt: skip


class CommandError(ValueError):
    """The text is not a valid `/ops` command; `message` says why, `usage` how to write it."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message, usage)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.message}\n\n{self.usage}"


def usage(subcommand: str | None = None) -> str:
    """The usage of one subcommand, or of all of them."""
    names = [subcommand] if subcommand in SUBCOMMANDS else list(SUBCOMMANDS)
    width = max(len(_synopsis(n)) for n in names)
    lines = [f"{_synopsis(n).ljust(width)}  {SUBCOMMANDS[n][1]}" for n in names]
    return "\n".join(["Usage:", *(f"  {line}" for line in lines)])


def _synopsis(name: str) -> str:
    args = SUBCOMMANDS[name][0]
    return f"{SLASH_COMMAND} {name} {args}".rstrip()


def parse_command(text: str) -> Command:
    """Parse the text after `/ops`; raise CommandError (with the usage) if it is not valid."""
    words = split_words(text)
    if not words:
        return Help()
    name, args = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, SUBCOMMANDS, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise CommandError(f"`{words[0]}` is not an /ops command{hint}", usage())
    return _PARSERS[name](args)


def split_words(text: str) -> list[str]:
    """Shell-like words of a slash command's text; CommandError for an unclosed quote."""
    clean = re.sub("&(?:lt|gt|amp);", lambda m: _ENTITIES[m.group(0)], text or "")
    try:
        return shlex.split(clean.translate(_QUOTES))
    except ValueError as exc:  # shlex says "No closing quotation"
        raise CommandError(f"cannot read the command: {str(exc).lower()}", usage()) from None


def _arity(name: str, args: list[str], least: int, most: int) -> None:
    if len(args) < least:
        missing = SUBCOMMANDS[name][0].split()[len(args)]
        raise CommandError(f"`{name}` needs {missing}", usage(name))
    if len(args) > most:
        extra = " ".join(args[most:])
        raise CommandError(f"`{name}` does not take `{extra}`", usage(name))


def _help(args: list[str]) -> Command:
    _arity("help", args, 0, 1)
    topic = args[0].lower() if args else None
    if topic is not None and topic not in SUBCOMMANDS:
        raise CommandError(f"there is no /ops command `{topic}`", usage())
    return Help(topic)


def _run(args: list[str]) -> Command:
    _arity("run", args, 1, 1_000)
    workflow, assignments = args[0], args[1:]
    if "=" in workflow:
        raise CommandError(f"`run` needs a workflow before `{workflow}`", usage("run"))
    try:
        params = parse_assignments(assignments)
    except ParamError as exc:
        problems = "; ".join(f"`{p.name}` {p.message} ({p.hint})" for p in exc.problems)
        raise CommandError(problems, usage("run")) from None
    return Run(workflow, params)


def _no_args(name: str, command: Callable[[], Command]) -> Callable[[list[str]], Command]:
    def parse(args: list[str]) -> Command:
        _arity(name, args, 0, 0)
        return command()

    return parse


def _status(args: list[str]) -> Command:
    _arity("status", args, 0, 1)
    return Status(args[0] if args else None)


def _cancel(args: list[str]) -> Command:
    _arity("cancel", args, 1, 1)
    return Cancel(args[0])


def _retry(args: list[str]) -> Command:
    _arity("retry", args, 1, 2)
    return Retry(args[0], args[1] if len(args) > 1 else None)


def _audit(args: list[str]) -> Command:
    _arity("audit", args, 1, 1)
    return Audit(args[0])


def _plan(args: list[str]) -> Command:
    """The same words as `run`, checked the same way."""
    _arity("plan", args, 1, 1_000)
    try:
        params = parse_assignments(args[1:])
    except ParamError as exc:
        problems = "; ".join(f"`{p.name}` {p.message} ({p.hint})" for p in exc.problems)
        raise CommandError(problems, usage("plan")) from None
    return Plan(args[0], params)


def _report(args: list[str]) -> Command:
    """`[7d] [WORKFLOW ...]`: a first word that starts with a digit is the window."""
    if not args or not args[0][:1].isdigit():
        return ShowReport(workflows=tuple(args))
    hint = f"write 24h, 7d or 90d (at most {MAX_SINCE.days}d)"
    try:
        since_s = parse_duration(args[0])
    except ValueError:
        raise CommandError(f"`{args[0]}` is not a window; {hint}", usage("report")) from None
    if not 0 < since_s <= MAX_SINCE.total_seconds():
        raise CommandError(f"`{args[0]}` is out of range; {hint}", usage("report"))
    return ShowReport(since_s, tuple(args[1:]))


_PARSERS = {
    "help": _help,
    "list": _no_args("list", ListWorkflows),
    "run": _run,
    "status": _status,
    "runs": _no_args("runs", Runs),
    "pending": _no_args("pending", Pending),
    "cancel": _cancel,
    "retry": _retry,
    "audit": _audit,
    "plan": _plan,
    "schedules": _no_args("schedules", Schedules),
    "report": _report,
}
