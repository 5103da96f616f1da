"""What `/ops` commands do, and the App Home tab: what a person asks to see or start.

Run on the bot's work pool after Bolt has acked (bot/slack/handlers.py): the command
arrives parsed (bot/slack/commands.py); each calls the orchestrator and answers
through the request's response_url.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.plan import plan_text
from bot.slack import commands as cmds
from bot.slack import modals
from bot.slack.audit_blocks import render_audit
from bot.slack.blocks import render_run_board
from bot.slack.home import render_home
from bot.slack.inbox import COMMAND, request_key, run_id_for
from bot.slack.replies import SORRY, Respond, mentions, run_exists, say
from bot.slack.report_blocks import render_report, render_week
from bot.slack.schedule_blocks import render_next_fires, render_schedules
from orchestrator.audit import RunVisibility, check_start, check_visible, run_trail
from orchestrator.engine import Orchestrator
from orchestrator.errors import OrchestratorError, UnknownWorkflow
from orchestrator.gates import listed
from orchestrator.protocol import InteractionView
from orchestrator.queries import RunSummary, open_interactions, recent_runs
from orchestrator.reports.audience import person_audience
from orchestrator.reports.build import build_report
from orchestrator.reports.figures import Report
from orchestrator.reports.window import DEFAULT_SINCE
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.params import missing_required

log = logging.getLogger(__name__)


class CommandHandlers:
    """`/ops <command>` and App Home for one orchestrator and Slack client."""

    def __init__(self, orch: Orchestrator, client: WebClient) -> None:
        self.orch, self.client = orch, client

    # -- /ops -----------------------------------------------------------------

    def command(self, command: cmds.Command, body: Mapping[str, Any], respond: Respond) -> None:
        user = body["user_id"]
        try:
            self._command(command, body, user, respond)
        except UnknownWorkflow as exc:
            say(respond, f":warning: {exc} `/ops list` shows the workflows you may run.")
        except OrchestratorError as exc:
            say(respond, f":warning: {mentions(str(exc))}")
        except Exception:
            log.exception("/ops %s failed", body.get("text"))
            say(respond, SORRY)

    def _command(
        self, command: cmds.Command, body: Mapping[str, Any], user: str, respond: Respond
    ) -> None:
        match command:
            case cmds.Run(workflow=name, params=params):
                self._run(name, params, body, respond)
            case cmds.ListWorkflows():
                where = body.get("channel_id")
                mine = self.orch.access.startable(user, self.orch.workflows.values(), where)
                lines = [f"• `{n}`: {self.orch.workflows[n].description}" for n in mine]
                say(respond, "\n".join(lines) or "There is no workflow you may run here.")
            case cmds.Status(run_id=None) | cmds.Runs():
                rows = self._visible_runs(user, body.get("channel_id"))
                lines = [f"• `{r.id}` {r.workflow} *{r.status}* (<@{r.started_by}>)" for r in rows]
                say(respond, "\n".join(lines) or "No runs you may see.")
            case cmds.Status(run_id=run_id):
                check_visible(self.orch.engine, self.orch.access, self.orch.clock.now(), user,
                              run_id, body.get("channel_id"), "status")  # fmt: skip
                board = render_run_board(self.orch.view(run_id))
                say(respond, board["text"], blocks=board["blocks"])
            case cmds.Pending():
                lines = [f"• `{i.run_id}` step `{i.step_id}` ({i.kind}): {i.prompt[:200]}"
                         for i in self._waiting_for(user)]  # fmt: skip
                say(respond, "\n".join(lines) or "Nothing is waiting for you.")
            case cmds.Cancel(run_id=run_id):
                self.orch.cancel(run_id, user)
                say(respond, f"Cancelled run `{run_id}`.")
            case cmds.Retry(run_id=run_id, step_id=step_id):
                self.orch.retry(run_id, step_id, user)
                say(respond, f"Retrying run `{run_id}`.")
            case cmds.Audit(run_id=run_id):
                trail = run_trail(self.orch.engine, self.orch.access, self.orch.clock.now(), user,
                                  run_id, body.get("channel_id"))  # fmt: skip
                say(respond, **render_audit(run_id, trail))
            case cmds.Plan(workflow=name, params=params):
                workflow = self._workflow(name, user, body.get("channel_id"))
                shown = plan_text(workflow, params, self.orch.clock.now())
                say(respond, f"```{shown}```")
            case cmds.Schedules():
                shown = render_schedules(
                    self.orch.schedules(), manage=self.orch.access.may_manage_schedules(user)
                )
                say(respond, shown["text"], blocks=shown["blocks"])
            case cmds.ShowReport(since_s=since_s, workflows=names):
                for name in names:
                    self._workflow(name, user, body.get("channel_id"))
                shown = render_report(self._report(user, body.get("channel_id"), since_s, names))
                say(respond, shown["text"], blocks=shown["blocks"])
            case _:
                say(respond, f"```{cmds.usage()}```")

    def _run(
        self, name: str, params: Mapping[str, Any], body: Mapping[str, Any], respond: Respond
    ) -> None:
        workflow = self._workflow(name, body["user_id"], body.get("channel_id"))
        if missing_required(workflow, params):
            check_start(self.orch.engine, self.orch.access, self.orch.clock.now(),
                        body["user_id"], workflow, body["channel_id"])  # fmt: skip
            meta = {"channel": body["channel_id"]}
            view = modals.params_modal(workflow, params, context=meta)
            self.client.views_open(trigger_id=body["trigger_id"], view=view)
            return
        run_id = run_id_for(request_key(COMMAND, body))  # a redo of this request: same run
        if not run_exists(self.orch, run_id):
            self.orch.start_run(name, params, started_by=body["user_id"], front_end="slack",
                                channel=body["channel_id"], run_id=run_id)  # fmt: skip
        say(respond, f"Started `{name}` run `{run_id}`; its status board is in this channel.")

    def _workflow(self, name: str, user: str, where: str | None) -> Workflow:
        """The workflow `name`, or UnknownWorkflow naming a near one only among those
        `user` may start from `where` (a name never leaks to whom `/ops list` hides it)."""
        try:
            return self.orch.workflow(name)
        except UnknownWorkflow:
            mine = self.orch.access.startable(user, self.orch.workflows.values(), where)
            raise UnknownWorkflow(name, mine) from None

    def _visible_runs(self, user: str, where: str | None, limit: int = 10) -> list[RunSummary]:
        """The newest runs `user` may see (access.py), at most `limit`."""
        rows = recent_runs(self.orch.engine, limit * 5)
        seen = RunVisibility(self.orch.engine, self.orch.access).runs_seen(
            user, {r.id for r in rows}, where
        )
        return [r for r in rows if r.id in seen][:limit]

    def _report(
        self, user: str, where: str | None, since_s: float, workflows: tuple[str, ...] = ()
    ) -> Report:
        """The report of the runs `user` may see from `where` (access.py, in SQL)."""
        audience = person_audience(self.orch.access, self.orch.engine, user, where)
        return build_report(self.orch.engine, self.orch.clock.now(), timedelta(seconds=since_s),
                            workflows, audience)  # fmt: skip

    def _waiting_for(self, user: str) -> list[InteractionView]:
        """Open interactions that name `user` (or nobody), as `pending` and App Home list them."""
        return [
            i for i in open_interactions(self.orch.engine)
            if listed(user, i.allowed_users, i.allowed_groups, self.orch.directory)
        ]  # fmt: skip

    def home(self, user: str) -> None:
        """Publish the App Home tab for `user`."""
        week = render_week(self._report(user, None, DEFAULT_SINCE.total_seconds()))
        view = render_home(self._waiting_for(user), self._visible_runs(user, None),
                           render_next_fires(self.orch.schedules()), week)  # fmt: skip
        try:
            self.client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:  # nobody waits for this answer: say it in the log
            error = exc.response.get("error") if exc.response is not None else exc
            log.warning("App Home for %s not published: Slack answered %s", user, error)
