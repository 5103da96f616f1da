"""Who may do what (orchestrator/access.py), the env: and access: blocks, the step's
environment, the secret scrubber and the start rate limit, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator import gates
from orchestrator.access import AccessPolicy, parse_admins
from orchestrator.clock import FakeClock
from orchestrator.errors import NotAllowed, RateLimited, StepFailed
from orchestrator.protocol import StaticDirectory
from orchestrator.queries import open_interactions
from orchestrator.rate_limit import RateLimit
from orchestrator.secrets import REDACTED, Scrubber, secret_values
from orchestrator.step_env import step_environment
from orchestrator.workflow.loader import check_text, parse_workflow
from tests.orchestrators import running

GUARDED = """
name: deploy
access:
  run: {users: [U0LEAD], groups: [S0SRE]}
  channels: [C0DEPLOY]
  cancel: {groups: [S0SRE]}
  retry: {users: [U0FIXER]}
steps:
  - id: ship
    approval:
      message: ship?
      approvers: {users: [U0BOSS]}
"""
DIRECTORY = StaticDirectory({"S0SRE": frozenset({"U0SRE"}), "S0ADMINS": frozenset({"U0ROOT"})})


def audit(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor, action FROM audit_log ORDER BY id"))
        return [tuple(r) for r in rows]


def run_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM workflow_run")).scalar_one()


HELLO = 'name: hello\nsteps:\n  - id: hi\n    shell: ["true"]\n'


def test_a_refused_start_says_who_may_starts_nothing_and_writes_one_audit_entry(
    engine: sa.Engine,
) -> None:
    with running(engine, GUARDED, directory=DIRECTORY) as orch:
        with pytest.raises(NotAllowed, match="U0LEAD, group S0SRE"):
            orch.start_run("deploy", {}, started_by="U0EVE", front_end="slack",
                           channel="C0DEPLOY")  # fmt: skip
        with pytest.raises(NotAllowed, match="only be run from C0DEPLOY"):
            orch.start_run("deploy", {}, started_by="u0lead ", front_end="slack",
                           channel="C0RANDOM")  # fmt: skip
        assert run_count(engine) == 0
        assert audit(engine) == [("U0EVE", "access.refused"), ("u0lead ", "access.refused")]
        orch.start_run("deploy", {}, started_by="U0SRE", front_end="slack", channel="C0DEPLOY")
        assert run_count(engine) == 1


def test_cancel_and_retry_need_the_requester_the_named_people_or_an_admin(
    engine: sa.Engine,
) -> None:
    admins = parse_admins("U0ADMIN, S0ADMINS")
    with running(engine, GUARDED, directory=DIRECTORY, admins=admins) as orch:
        run_id = orch.start_run("deploy", {}, started_by="U0LEAD")
        orch.wait(run_id)
        before = audit(engine)
        with pytest.raises(NotAllowed, match="may not cancel"):
            orch.cancel(run_id, "U0EVE")
        with pytest.raises(NotAllowed, match="may not retry"):
            orch.retry(run_id, None, "U0SRE")  # named for cancel, not for retry
        assert orch.view(run_id).status == "waiting"
        assert audit(engine)[len(before):] == [("U0EVE", "access.refused"),
                                               ("U0SRE", "access.refused")]  # fmt: skip
        # An admin may cancel, but not approve a gate that does not list them.
        gate = orch.view(run_id)
        iid = next(i.id for i in open_interactions(engine, gate.id))
        with pytest.raises(NotAllowed):
            orch.decide(iid, "U0ROOT", "approve")
        assert orch.cancel(run_id, "U0ROOT").status == "cancelled"


def test_crash_recovery_questions_are_for_whoever_may_retry() -> None:
    workflow = parse_workflow(GUARDED)
    policy = AccessPolicy(parse_admins("U0ADMIN"), DIRECTORY)
    who = policy.recovery_answerers("U0LEAD", workflow)
    row = {"purpose": "recovery", "allowed_users": list(who.users),
           "allowed_groups": list(who.groups), "allow_requester": True}  # fmt: skip
    for user in ("U0LEAD", "u0fixer", "U0ADMIN"):
        gates.check_allowed(row, user, "U0LEAD", DIRECTORY)
    with pytest.raises(NotAllowed):
        gates.check_allowed(row, "U0EVE", "U0LEAD", DIRECTORY)


def test_a_scheduled_run_is_changed_and_recovered_by_whoever_manages_schedules() -> None:
    """Seen by a review: `schedule:<id>` stood as the requester, so with no admins set
    nobody could cancel, retry or answer the crash question of a scheduled run."""
    workflow, robot = parse_workflow(HELLO), "schedule:hello/nightly"
    open_policy = AccessPolicy(parse_admins(""), DIRECTORY)
    assert open_policy.may_change("U0ANY", robot, workflow, "cancel")
    assert open_policy.recovery_answerers(robot, workflow).is_open
    guarded = AccessPolicy(parse_admins("U0ADMIN"), DIRECTORY)
    assert guarded.may_change("U0ADMIN", robot, workflow, "retry")
    assert not guarded.may_change("U0ANY", robot, workflow, "retry")
    who = guarded.recovery_answerers(robot, workflow)
    assert robot not in who.users and "U0ADMIN" in who.users


def test_starts_are_rate_limited_per_person_in_the_database(engine: sa.Engine) -> None:
    clock = FakeClock()
    flow = 'name: hello\nsteps:\n  - id: hi\n    shell: ["true"]\n'
    with running(engine, flow, clock=clock, rate_limit=RateLimit.parse("3/min")) as orch:
        for _ in range(3):
            orch.start_run("hello", {}, started_by="U0BUSY")
        orch.start_run("hello", {}, started_by="U0CALM")  # counted per person
        clock.advance(timedelta(seconds=20))
        with pytest.raises(RateLimited, match="retry in 40 s") as refused:
            orch.start_run("hello", {}, started_by="U0BUSY")
        assert refused.value.retry_in_s == 40
        assert run_count(engine) == 4
        clock.advance(timedelta(seconds=41))
        orch.start_run("hello", {}, started_by="U0BUSY")
        assert run_count(engine) == 5


@pytest.mark.parametrize("text", ["", "20/min", "100/h", "5/30s"])
def test_rate_limits_read(text: str) -> None:
    RateLimit.parse(text)


def test_a_bad_rate_limit_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="like 20/min"):
        RateLimit.parse("lots")


def test_env_and_access_blocks_are_checked_with_file_and_line() -> None:
    text = """name: x
env:
  GOOD: {from_env: DEPLOY_TOKEN}
  BAD: {from_env: SLACK_SIGNING_SECRET}
access:
  channels: [general]
steps:
  - id: a
    shell: ["true"]
    env: {DB: {from_env: DATABASE_URL}, OPSLOOP_RUN_ID: fake}
"""
    _, problems = check_text(text, "x.yml")
    found = [(p.line, p.message) for p in problems]
    assert found == [
        (4, "env `BAD` may not pass the bot's own setting SLACK_SIGNING_SECRET"),
        (6, "general in channels is not a Slack channel id"),
        (10, "env `DB` may not pass the bot's own setting DATABASE_URL"),
        (10, "env may not set `OPSLOOP_RUN_ID`"),
    ]


def test_a_step_gets_the_basics_what_env_passes_and_nothing_else() -> None:
    workflow = parse_workflow("""name: x
env: {REGION: eu, TOKEN: {from_env: DEPLOY_TOKEN}}
steps:
  - id: a
    shell: ["true"]
    env: {REGION: us}
""")
    bot = {"PATH": "/bin", "LC_ALL": "C", "SLACK_BOT_TOKEN": "xoxb-1", "DATABASE_URL": "pg://",
           "DEPLOY_TOKEN": "t0k3n", "AWS_SECRET_ACCESS_KEY": "k"}  # fmt: skip
    env = step_environment(workflow, workflow.step("a"), "r-1", bot)
    assert env == {"PATH": "/bin", "LC_ALL": "C", "REGION": "us", "TOKEN": "t0k3n",
                   "OPSLOOP_RUN_ID": "r-1", "OPSLOOP_STEP_ID": "a"}  # fmt: skip
    with pytest.raises(StepFailed, match="DEPLOY_TOKEN, which is not set"):
        step_environment(workflow, workflow.step("a"), "r-1", {"PATH": "/bin"})


PRINT_ENV = """
name: print_env
steps:
  - id: show
    env: {DEPLOY: {from_env: PROBE_DEPLOY_TOKEN}}
    shell: ["sh", "-c", "echo lc=$LC_OPSLOOP_PROBE token=$SLACK_BOT_TOKEN db=$DATABASE_URL
      secret=$OPSLOOP_PROBE_SECRET deploy=$DEPLOY"]
"""


def test_a_shell_step_gets_the_basics_taken_when_the_orchestrator_was_built(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The basics are taken from the bot's environment once (walking it cost ~50 us a
    step), never its secrets; a `from_env` variable is still read when the step starts
    (docs/security.md)."""
    monkeypatch.setenv("LC_OPSLOOP_PROBE", "at-start")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-for-steps")
    monkeypatch.setenv("DATABASE_URL", "postgresql://not-for-steps@db/ops")
    monkeypatch.setenv("OPSLOOP_PROBE_SECRET", "not-for-steps")
    monkeypatch.setenv("PROBE_DEPLOY_TOKEN", "at-start")
    with running(engine, PRINT_ENV) as orch:
        monkeypatch.setenv("LC_OPSLOOP_PROBE", "changed-later")
        monkeypatch.setenv("PROBE_DEPLOY_TOKEN", "at-step-start")  # rotated meanwhile
        run = orch.wait(orch.start_run("print_env", {}, started_by="U0RUN"), timeout=30)
    assert run.status == "succeeded", run.steps[0].error
    assert run.steps[0].outputs["stdout"].split() == [
        "lc=at-start", "token=", "db=", "secret=", "deploy=at-step-start"]  # fmt: skip


def test_the_scrubber_cuts_the_bots_secrets_out_of_text_and_json() -> None:
    url = "postgresql://opsloop:p%40ss-word@db/ops"
    scrubber = Scrubber(secret_values({"SLACK_BOT_TOKEN": "xoxb-123456", "SLACK_CHANNEL": "C0"},
                                      url))  # fmt: skip
    out = scrubber.value({"stdout": f"token=xoxb-123456 url={url} pw=p@ss-word", "n": 3})
    assert out == {"stdout": f"token={REDACTED} url={REDACTED} pw={REDACTED}", "n": 3}
    assert Scrubber().text("xoxb-123456") == "xoxb-123456"


LEAKY_CTX = """
name: leaky_ctx
steps:
  - id: find
    python: ask_tasks:leak_token
"""


def test_a_result_recovered_from_its_checkpoint_is_scrubbed(engine: sa.Engine) -> None:
    """Seen by a review: recovery recorded a finished step's outputs straight from its
    LangGraph checkpoint, which holds them unscrubbed."""
    scrubber = Scrubber(["s3cr3t-of-the-bot"])
    with running(engine, LEAKY_CTX, scrubber=scrubber) as orch:
        run = orch.wait(orch.start_run("leaky_ctx", {}, started_by="U0RUN"), timeout=30)
        assert run.steps[0].outputs == {"found": f"token={REDACTED}"}
    with engine.begin() as conn:  # as a crash just after the step's checkpoint left it
        conn.execute(sa.text("UPDATE step_run SET status = 'running', outputs = NULL, "
                             "owner = NULL, lease_until = NULL"))  # fmt: skip
        conn.execute(sa.text("UPDATE workflow_run SET status = 'running'"))
    with running(engine, LEAKY_CTX, scrubber=scrubber, recover=True) as orch:
        run = orch.wait(run.id, timeout=30)
        assert run.status == "succeeded"
        assert run.steps[0].outputs == {"found": f"token={REDACTED}"}
