"""Workflow texts several test modules run."""

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
      deadline: 1s  # long enough that `run` exits before it passes, even on a busy machine
      on_deadline: reject
  - id: after
    needs: [gate]
    shell: ["true"]
"""
