"""Answering gates from the command line: parsing `decide` answers and asking on a terminal."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from orchestrator.engine import Orchestrator
from orchestrator.errors import InvalidAnswer, OrchestratorError
from orchestrator.protocol import InteractionView
from orchestrator.queries import open_interactions
from orchestrator.workflow.params import parse_assignments


def parse_answer(interaction: InteractionView, words: Sequence[str]) -> Any:
    """`decide`'s ANSWER words as the gate expects them: a word, an option, or fields."""
    if interaction.kind != "input" or interaction.purpose == "recovery":
        return " ".join(words).strip()
    text = " ".join(words).strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidAnswer(f"the answer is not valid JSON: {exc.msg} at {exc.pos}") from None
        if isinstance(value, dict):
            return value
    try:
        return parse_assignments(words)
    except OrchestratorError:
        names = " ".join(f"{f.name}=..." for f in interaction.fields)
        raise InvalidAnswer(f"answer an input gate with field=value pairs: {names}") from None


def answer_pending(
    orch: Orchestrator,
    run_id: str,
    user: str,
    ask: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> bool:
    """Ask for each open interaction of the run; True if at least one answer was recorded."""
    answered = False
    for item in open_interactions(orch.engine, run_id):
        try:
            answered |= _ask_one(orch, item, user, ask, out)
        except EOFError:
            return answered
    return answered


def _ask_one(
    orch: Orchestrator, item: InteractionView, user: str, ask: Callable[[str], str],
    out: TextIO | None,
) -> bool:  # fmt: skip
    print(f"\n? {item.step_id}: {item.prompt}", file=out, flush=True)
    while True:
        words = _read_answer(item, ask, out)
        if not words:
            print("  left pending", file=out, flush=True)
            return False
        who = ask(f"  answer as [{user}]: ").strip() or user
        try:
            orch.decide(item.id, who, parse_answer(item, words))
            return True
        except OrchestratorError as exc:
            print(f"  {exc}", file=out, flush=True)
            if not isinstance(exc, InvalidAnswer):
                return False


def _read_answer(item: InteractionView, ask: Callable[[str], str], out: TextIO | None) -> list[str]:
    if item.kind == "input" and item.purpose != "recovery":
        pairs = []
        for field in item.fields:
            choices = f" ({'/'.join(field.choices)})" if field.choices else ""
            value = ask(f"  {field.label}{choices}: ").strip()
            if value:
                pairs.append(f"{field.name}={value}")
        return pairs
    if item.options:
        for n, option in enumerate(item.options, 1):
            print(f"  {n}. {option.label} [{option.value}]", file=out, flush=True)
        text = ask("  pick a number or value (empty leaves it pending): ").strip()
        if text.isdigit() and 1 <= int(text) <= len(item.options):
            text = item.options[int(text) - 1].value
        return [text] if text else []
    text = ask("  approve or reject (empty leaves it pending): ").strip()
    return [text] if text else []
