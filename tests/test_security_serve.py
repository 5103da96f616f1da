"""Attacks on `opsloop serve` in HTTP mode, as real processes with signed requests.

A hostile review found that every step inherited the bot's environment (a build step
read SLACK_SIGNING_SECRET and signed a click as the production approver), that a
failing step posted the bot token into the channel, that unsigned junk cost a 500 and a
traceback each, that bodies were unbounded, and that a signed `/ops run` replayed
within Slack's five-minute window started a run each time. Each test here is one of
those attacks, against the real bot, failing to do harm.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from bot.slack import ids
from orchestrator.queries import recent_runs, run_view
from tests.polling import until
from tests.serve_process import CHANNEL, Served, health, serving_http
from tests.slack_double import SlackDouble
from tests.slack_signing import (
    SIGNING_SECRET,
    action_from_blocks,
    block_actions,
    post_signed,
    slash_command,
)

DEPLOY_TOKEN = "deploy-token-passed-on-purpose"
TABLES = ("workflow_run", "step_run", "interaction", "audit_log", "outbox")


def leaky_workflow(secret_file: Path) -> str:
    """A step that prints its environment, one that prints a secret it found on disk and
    fails, and a gate only U0BOSS may approve."""
    return f"""
name: leaky
env:
  DEPLOY_TOKEN: {{from_env: DEPLOY_TOKEN}}
steps:
  - id: dump
    shell: ["env"]
  - id: leak
    shell: ["sh", "-c", "cat {secret_file}; cat {secret_file} >&2; exit 3"]
  - id: prod
    approval:
      message: ship it?
      approvers: {{users: [U0BOSS]}}
"""


def stored_text(served: Served) -> str:
    with served.engine.connect() as conn:
        return "\n".join(json.dumps([list(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}"))],
                                    default=str) for t in TABLES)  # fmt: skip


def test_a_step_sees_no_secret_cannot_forge_an_approval_and_leaks_none(
    db_url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "found-on-disk"
    secret_file.write_text(SIGNING_SECRET)
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "leaky.yml").write_text(leaky_workflow(secret_file))
    extra = {"DEPLOY_TOKEN": DEPLOY_TOKEN, "UNRELATED_SECRET": "never-passed-on-1234"}
    with SlackDouble() as slack, serving_http(slack, db_url, flows, tmp_path / "bot.log",
                                              extra) as (served, url):  # fmt: skip
        secrets = [slack.token, SIGNING_SECRET, db_url]
        status, _ = post_signed(url, slash_command("run leaky", channel_id=CHANNEL,
                                                   response_url=slack.response_url()))  # fmt: skip
        assert status == 200
        run_id = served.run_id()
        until(lambda: {s.step_id: s.status for s in run_view(served.engine, run_id).steps}
              .items() >= {"dump": "succeeded", "leak": "failed"}.items(),
              what="the dump to succeed and the leaking step to fail")  # fmt: skip
        run = run_view(served.engine, run_id)
        steps = {s.step_id: s for s in run.steps}
        seen = dict(line.split("=", 1) for line in steps["dump"].outputs["stdout"].splitlines()
                    if "=" in line)  # fmt: skip
        assert seen["DEPLOY_TOKEN"] == DEPLOY_TOKEN  # passed by name in env:
        assert seen["OPSLOOP_RUN_ID"] == run_id and seen["OPSLOOP_STEP_ID"] == "dump"
        assert "PATH" in seen
        assert not [k for k in seen if k.startswith(("SLACK_", "DATABASE", "UNRELATED"))], seen
        assert "[redacted]" in steps["leak"].outputs["stdout"]
        assert "[redacted]" in (steps["leak"].error or "")

        # The attacker signs a click as the approver with what the step could see.
        gate = served.gate(run_id, "ship it?")
        action = action_from_blocks(gate.blocks or [], ids.APPROVE)
        forged = block_actions([action], user_id="U0BOSS", channel_id=CHANNEL,
                               message_ts=gate.ts)  # fmt: skip
        status, _ = post_signed(url, forged, secret=seen.get("SLACK_SIGNING_SECRET", ""))
        assert status == 401
        with served.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT status FROM interaction")).scalar() == "pending"

        until(lambda: not served.slack.calls() or all(
            c.ok for c in served.slack.calls()), what="Slack calls to settle")  # fmt: skip
        said = json.dumps([[c.params, c.response] for c in served.slack.calls()])
        said += json.dumps(served.slack.responses())
        for text in (said, stored_text(served), served.output()):
            assert "never-passed-on-1234" not in text
            for secret in secrets:
                assert secret not in text


def test_unsigned_oversize_malformed_and_replayed_requests_do_no_harm(
    db_url: str, tmp_path: Path
) -> None:
    flows = tmp_path / "workflows"
    flows.mkdir()
    (flows / "hello.yml").write_text('name: hello\nsteps:\n  - id: hi\n    shell: ["true"]\n')
    with SlackDouble() as slack, serving_http(slack, db_url, flows,
                                              tmp_path / "bot.log") as (served, url):  # fmt: skip
        base = url.rsplit("/slack/", 1)[0]
        for _ in range(20):
            assert _post(url, b"payload=x", {}) == 401  # unsigned: refused before parsing
        assert (
            _post(
                url, b"payload=x", {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"}
            )
            == 401
        )
        status, _ = post_signed(url, "payload=x")  # signed, but not what Slack sends
        assert status == 400
        big = b"a" * (2 << 20)  # refused by its Content-Length: never read
        assert _post(url, big, {"Content-Type": "application/x-www-form-urlencoded"}) == 413

        body = slash_command("run hello", channel_id=CHANNEL, response_url=slack.response_url())
        timestamp = int(time.time())
        assert post_signed(url, body, timestamp=timestamp)[0] == 200
        for _ in range(3):  # the same signed request again, within Slack's window
            assert post_signed(url, body, timestamp=timestamp)[0] == 401
        until(lambda: recent_runs(served.engine, 5), what="the one run")
        assert len(recent_runs(served.engine, 5)) == 1

        refused = health(base)["refused"]
        refused.pop("too_large", None)  # waitress may refuse it first, by Content-Length
        assert refused == {"unsigned": 20, "bad_signature": 1, "malformed": 1, "replayed": 3}
        assert served.output().count("Traceback") == 0


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (ConnectionError, urllib.error.URLError):  # waitress may close mid-upload
        return 413
