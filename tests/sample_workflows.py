"""Workflow texts several test modules run, and the folder they are written to."""

import json
from collections.abc import Mapping
from pathlib import Path


def workflow_dir(tmp_path: Path, workflows: Mapping[str, str]) -> Path:
    """`tmp_path/workflows` holding one `<name>.yml` per entry (file name -> text)."""
    flows = tmp_path / "workflows"
    flows.mkdir()
    for name, text in workflows.items():
        (flows / f"{name}.yml").write_text(text)
    return flows


def blocking_shell(started: Path, release: Path) -> str:
    """A `shell:` value that records each start in `started`, then blocks until `release`
    exists."""
    script = f"echo x >> {started}; while [ ! -e {release} ]; do sleep 0.05; done"
    return json.dumps(["sh", "-c", script])


GATED = """
name: gated
params:
  service: {type: choice, choices: [api, web], required: true}
steps:
  - id: build
    shell: ["echo", "built {{ params.service }}"]
  - id: approve
    needs: build
    approval:
      message: "Ship {{ params.service }}?"
      approvers: {users: [U0BOSS, U0DEPUTY]}
  - id: ship
    needs: approve
    shell: ["echo", "shipped"]
"""

EXPIRING = """
name: expiring
steps:
  - id: gate
    approval:
      message: "ok?"
      deadline: 1s  # for a FakeClock: on the wall clock a busy machine can pass it mid-`run`
      on_deadline: reject
  - id: after
    needs: [gate]
    shell: ["true"]
"""
