"""One number rule for the CLI, Slack forms and params (orchestrator/workflow/numbers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from orchestrator.workflow.numbers import MAX_INT, NumberError, parse_number, parse_whole

SIZED = """
name: sized
steps:
  - id: size
    input:
      message: How many?
      fields: {n: {type: number}}
  - id: use
    needs: [size]
    python: engine_tasks:ok
"""


@pytest.mark.parametrize("raw, number", [
    ("3", 3), (" -12 ", -12), ("2.5", 2.5), ("2.0", 2), (".5", 0.5), (7, 7), (2.0, 2),
    ("12345678901234567", 12345678901234567), (str(MAX_INT), MAX_INT),
])  # fmt: skip
def test_numbers_people_type_are_read_exactly(raw: object, number: object) -> None:
    got = parse_number(raw)
    assert got == number and type(got) is type(number)


@pytest.mark.parametrize("raw, why", [
    ("1e3", "write 1000, not 1e3"), ("nan", "not a number"), ("inf", "not a number"),
    ("0x10", "not a number"), ("1_000", "not a number"), (True, "not a number"),
    (float("nan"), "not a number"), (str(MAX_INT + 1), "too large"),
    ("99999999999999999999", "too large"), (1e30, "too large"),
])  # fmt: skip
def test_what_is_not_a_number_is_refused_saying_why(raw: object, why: str) -> None:
    with pytest.raises(NumberError, match=why):
        parse_number(raw)
    with pytest.raises(NumberError):
        parse_whole(raw)


def test_a_huge_answer_is_refused_and_the_gate_still_takes_a_good_one(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "sized.yml").write_text(SIZED)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPSLOOP_WORKFLOWS", str(flows))
    assert main(["run", "sized", "--json"]) == 0
    [gate] = json.loads(capsys.readouterr().out)["pending"]
    # Before: accepted, then the step crashed writing its checkpoint and the run failed.
    assert main(["decide", gate["id"], "n=99999999999999999999"]) == 2
    err = capsys.readouterr().err
    assert "too large: whole numbers go up to 9,223,372,036,854,775,807" in err
    assert main(["decide", gate["id"], "n=12345678901234567", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded"
    [size] = [s for s in result["steps"] if s["id"] == "size"]
    assert size["outputs"]["n"] == 12345678901234567
