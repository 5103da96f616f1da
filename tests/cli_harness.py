"""`opsloop` called in-process on real workflow files: the `cli` fixture's body for
test_cli, test_cli_defects, test_schedules_cli and test_audit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main

Cli = Callable[..., tuple[int, str, str]]


def in_process_cli(
    db_url: str, flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Cli:
    """Call `opsloop ARGS...` in-process as user U0OPS; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPSLOOP_WORKFLOWS", str(flows))
    monkeypatch.setenv("OPSLOOP_USER", "U0OPS")

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call
