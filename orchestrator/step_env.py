"""The environment a shell step runs with: an allow-list, never the bot's own.

The bot's environment holds its Slack token, signing secret and database URL; a step
that inherited it could sign a click as any approver, or print the secrets into the
channel. So a step gets only the basics a process needs to run (BASICS), its run and
step ids, and what its workflow passes by name in `env:` (docs/security.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from orchestrator.errors import StepFailed
from orchestrator.workflow.definitions import EnvValue, Step, Workflow

# What a process expects to find (where programs are, whose home, which language and
# time zone, where temporary files go), and nothing that can hold a credential.
BASICS = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL",
          "TERM", "PWD")  # fmt: skip
BASIC_PREFIXES = ("LC_",)


def basic_environment(source: Mapping[str, str]) -> dict[str, str]:
    """The basics of `source` (BASICS and `LC_*`), and nothing else.

    Walking os.environ decodes every variable (~50 us a step), so the orchestrator takes
    the basics once when it is built (Services.basics) and each step copies them."""
    # Keys first, values only for the few kept: os.environ decodes each one it hands out.
    return {k: source[k] for k in source if k in BASICS or k.startswith(BASIC_PREFIXES)}


def step_environment(
    workflow: Workflow, step: Step, run_id: str, source: Mapping[str, str] | None = None,
    basics: Mapping[str, str] | None = None,
) -> dict[str, str]:  # fmt: skip
    """The variables `step` of `run_id` runs with; `source` is the bot's environment,
    `basics` its basic_environment() if already taken (else taken from `source`).

    Step `env:` wins over workflow `env:`, which wins over the basics; the run and step
    ids are set last so no workflow can fake them. A `from_env` variable the bot does not
    have fails the step, naming it (read from `source` when the step starts).
    """
    source = os.environ if source is None else source
    env = dict(basic_environment(source) if basics is None else basics)
    for var in (*workflow.env, *step.env):
        env[var.name] = _value(var, source, step.id)
    env["OPSLOOP_RUN_ID"] = run_id
    env["OPSLOOP_STEP_ID"] = step.id
    return env


def _value(var: EnvValue, source: Mapping[str, str], step_id: str) -> str:
    if var.from_env is None:
        return var.value or ""
    if var.from_env not in source:
        raise StepFailed(
            f"step {step_id} passes {var.name} from the bot's environment variable "
            f"{var.from_env}, which is not set; set it where opsloop runs, or remove it "
            "from env:"
        )
    return source[var.from_env]
