"""What `/ops` commands, clicks and modal submissions do, after Bolt has acked them.

These run on the bot's own work pool, never on Bolt's listener pool, so a slow
database or Slack call can never delay another request's ack. Each handler
parses a payload into a typed value, calls one orchestrator function and
replies through the request's response_url (ephemeral, no scope needed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.plan import plan_text
from bot.settings import SlackSettings
from bot.slack import commands as cmds
from bot.slack import ids, modals, submissions
from bot.slack.audit_blocks import render_audit
from bot.slack.blocks import render_run_board
from bot.slack.home import render_home
from bot.slack.inbox import COMMAND, request_key, run_id_for
from bot.slack.report_blocks import render_report, render_week
from bot.slack.schedule_blocks import render_next_fires, render_schedules
from orchestrator.audit import RunVisibility, check_start, check_visible, run_trail
from orchestrator.engine import Orchestrator
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.gates import listed
from orchestrator.protocol import InteractionView, RunView
from orchestrator.queries import RunSummary, interaction, open_interactions, recent_runs
from orchestrator.reports.audience import person_audience
from orchestrator.reports.build import build_report
from orchestrator.reports.figures import Report
from orchestrator.reports.window import DEFAULT_SINCE
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.params import missing_required

log = logging.getLogger(__name__)
Respond = Callable[..., Any]


_USER_ID = re.compile(r"(?<![<@\w])([UW][A-Z0-9]{2,})\b")


def _say(respond: Respond, text: str, **more: Any) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False, **more)


def _mentions(text: str) -> str:
    """Orchestrator messages name people by id; Slack shows `<@U123>` as their name."""
    return _USER_ID.sub(r"<@\1>", text)


class Handlers:
    def __init__(self, orch: Orchestrator, client: WebClient, settings: SlackSettings) -> None:
        self.orch, self.client, self.settings = orch, client, settings

    # -- /ops -----------------------------------------------------------------

    def command(self, command: cmds.Command, body: Mapping[str, Any], respond: Respond) -> None:
        user = body["user_id"]
        try:
            self._command(command, body, user, respond)
        except OrchestratorError as exc:
            _say(respond, f":warning: {_mentions(str(exc))}")
        except Exception:
            log.exception("/ops %s failed", body.get("text"))
            _say(respond, ":boom: Something went wrong on our side; the logs have the details.")

    def _command(
        self, command: cmds.Command, body: Mapping[str, Any], user: str, respond: Respond
    ) -> None:
        match command:
            case cmds.Run(workflow=name, params=params):
                self._run(name, params, body, respond)
            case cmds.ListWorkflows():
                where = body.get("channel_id")
                lines = [f"• `{w.name}`: {w.description}" for w in self.orch.workflows.values()
                         if self.orch.access.run_refusal(user, w, where) is None]  # fmt: skip
                _say(respond, "\n".join(lines) or "There is no workflow you may run here.")
            case cmds.Status(run_id=None) | cmds.Runs():
                rows = self._visible_runs(user, body.get("channel_id"))
                lines = [f"• `{r.id}` {r.workflow} *{r.status}* (<@{r.started_by}>)" for r in rows]
                _say(respond, "\n".join(lines) or "No runs you may see.")
            case cmds.Status(run_id=run_id):
                check_visible(self.orch.engine, self.orch.access, self.orch.clock.now(), user,
                              run_id, body.get("channel_id"), "status")  # fmt: skip
                board = render_run_board(self.orch.view(run_id))
                _say(respond, board["text"], blocks=board["blocks"])
            case cmds.Pending():
                lines = [f"• `{i.run_id}` step `{i.step_id}` ({i.kind}): {i.prompt[:200]}"
                         for i in self._waiting_for(user)]  # fmt: skip
                _say(respond, "\n".join(lines) or "Nothing is waiting for you.")
            case cmds.Cancel(run_id=run_id):
                self.orch.cancel(run_id, user)
                _say(respond, f"Cancelled run `{run_id}`.")
            case cmds.Retry(run_id=run_id, step_id=step_id):
                self.orch.retry(run_id, step_id, user)
                _say(respond, f"Retrying run `{run_id}`.")
            case cmds.Audit(run_id=run_id):
                trail = run_trail(self.orch.engine, self.orch.access, self.orch.clock.now(), user,
                                  run_id, body.get("channel_id"))  # fmt: skip
                _say(respond, **render_audit(run_id, trail))
            case cmds.Plan(workflow=name, params=params):
                shown = plan_text(self.orch.workflow(name), params, self.orch.clock.now())
                _say(respond, f"```{shown}```")
            case cmds.Schedules():
                shown = render_schedules(
                    self.orch.schedules(), manage=self.orch.access.may_manage_schedules(user)
                )
                _say(respond, shown["text"], blocks=shown["blocks"])
            case cmds.ShowReport(since_s=since_s, workflows=names):
                for name in names:
                    self.orch.workflow(name)  # UnknownWorkflow lists the known ones
                shown = render_report(self._report(user, body.get("channel_id"), since_s, names))
                _say(respond, shown["text"], blocks=shown["blocks"])
            case _:
                _say(respond, f"```{cmds.usage()}```")

    def _run(
        self, name: str, params: Mapping[str, Any], body: Mapping[str, Any], respond: Respond
    ) -> None:
        workflow = self.orch.workflow(name)
        if missing_required(workflow, params):
            check_start(self.orch.engine, self.orch.access, self.orch.clock.now(),
                        body["user_id"], workflow, body["channel_id"])  # fmt: skip
            meta = {"channel": body["channel_id"]}
            view = modals.params_modal(workflow, params, context=meta)
            self.client.views_open(trigger_id=body["trigger_id"], view=view)
            return
        run_id = run_id_for(request_key(COMMAND, body))  # a redo of this request: same run
        if not self._exists(run_id):
            self.orch.start_run(name, params, started_by=body["user_id"], front_end="slack",
                                channel=body["channel_id"], run_id=run_id)  # fmt: skip
        _say(respond, f"Started `{name}` run `{run_id}`; its status board is in this channel.")

    def _exists(self, run_id: str) -> bool:
        try:
            self.orch.view(run_id)
        except NotFound:
            return False
        return True

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
        self.client.views_publish(user_id=user, view=view)

    # -- clicks -----------------------------------------------------------------

    def action(self, body: Mapping[str, Any], respond: Respond) -> None:
        user = body["user"]["id"]
        try:
            ref = ids.decode_action(body["actions"][0])
            if isinstance(ref, ids.ScheduleRef):
                self._schedule_action(ref, user, respond)
            else:
                self._action(ref, body, user)
        except (OrchestratorError, ids.PayloadError) as exc:
            _say(respond, f":no_entry_sign: {_mentions(str(exc))}")
        except Exception:
            log.exception("click failed")
            _say(respond, ":boom: Something went wrong on our side; the logs have the details.")

    def _action(self, ref: ids.ActionRef, body: Mapping[str, Any], user: str) -> None:
        if ref.action == ids.APPROVE:
            self.orch.decide(ref.interaction_id, user, "approve")
        elif ref.action == ids.REJECT:
            self.orch.decide(ref.interaction_id, user, "reject")
        elif ref.action == ids.DECIDE:
            self.orch.decide(ref.interaction_id, user, self._choice(ref))
        elif ref.action in (ids.REJECT_WITH_REASON, ids.OPEN_INPUT):
            item = self._interaction(ref.interaction_id)
            opened = ref.action == ids.OPEN_INPUT
            build = modals.input_modal if opened else modals.reject_reason_modal
            self.client.views_open(trigger_id=body["trigger_id"], view=build(item))
        elif ref.action == ids.APPROVE_WITH_CHANGES:
            item = self._interaction(ref.interaction_id)
            run = self.orch.view(item.run_id)
            workflow = self._editable(run, item)
            view = modals.edit_params_modal(workflow, run, item)
            self.client.views_open(trigger_id=body["trigger_id"], view=view)
        else:
            raise ids.PayloadError(f"{ref.action} is not supported")

    def _schedule_action(self, ref: ids.ScheduleRef, user: str, respond: Respond) -> None:
        """Pause or resume from `/ops schedules`; the list is shown again as it is now."""
        if ref.action == ids.SCHEDULE_PAUSE:
            self.orch.pause_schedule(ref.schedule_id, user, "paused from Slack")
        else:
            self.orch.resume_schedule(ref.schedule_id, user)
        shown = render_schedules(self.orch.schedules(), manage=True)
        respond(text=shown["text"], blocks=shown["blocks"], response_type="ephemeral",
                replace_original=True)  # fmt: skip

    def _editable(self, run: RunView, item: InteractionView) -> Workflow:
        """The workflow as the edit modal shows it: the run's own version (its file may
        have changed since it started), with only the params this gate lets change."""
        workflow = self.orch.workflow_of(run)
        params = tuple(p for p in workflow.params if p.name in item.editable_params)
        return replace(workflow, params=params)

    def _form_workflow(self, callback: str, meta: Mapping[str, Any]) -> Workflow | None:
        """What a params form is about: the current file for a new run, or the params of
        a run under way that its gate lets change; None if that is gone."""
        if callback == ids.PARAMS_VIEW:
            return self.orch.workflows.get(meta.get("workflow", ""))
        item = interaction(self.orch.engine, meta.get("interaction", ""))
        return None if item is None else self._editable(self.orch.view(item.run_id), item)

    def _interaction(self, iid: str) -> InteractionView:
        item = interaction(self.orch.engine, iid)
        if item is None:
            raise OrchestratorError(f"interaction {iid} no longer exists")
        return item

    def _choice(self, ref: ids.ActionRef) -> str:
        if ref.choice is not None:
            return ref.choice
        options = self._interaction(ref.interaction_id).options
        if ref.index is None or not 0 <= ref.index < len(options):
            raise ids.PayloadError("that option no longer exists")
        return options[ref.index].value

    # -- modal submissions (validated before ack, applied after) -----------------

    def validate_submission(self, view: Mapping[str, Any]) -> dict[str, Any] | None:
        """Slack's `response_action: errors` payload when the form is wrong, else None."""
        callback = view.get("callback_id")
        values = _values(view)
        meta = ids.decode_metadata(view.get("private_metadata"))
        if callback == ids.INPUT_VIEW:
            item = interaction(self.orch.engine, meta.get("interaction", ""))
            if item is None:
                return None
            parsed = submissions.parse_input_submission(item, values)
            errors = submissions.validate_input_submission(item, parsed)
        elif callback in (ids.PARAMS_VIEW, ids.EDIT_PARAMS_VIEW):
            workflow = self._form_workflow(callback, meta)
            if workflow is None:
                return None
            parsed = submissions.parse_params_submission(
                workflow, values, view.get("private_metadata")
            )
            errors = submissions.validate_params_submission(workflow, parsed)
        else:
            return None
        return submissions.errors_response(errors) if errors else None

    def submission(self, body: Mapping[str, Any]) -> None:
        view, user = body["view"], body["user"]["id"]
        submit = {
            ids.INPUT_VIEW: self._submit_input,
            ids.REJECT_REASON_VIEW: self._submit_reason,
            ids.PARAMS_VIEW: self._submit_params,
            ids.EDIT_PARAMS_VIEW: self._submit_edited_params,
        }.get(view["callback_id"])
        if submit is None:
            return
        try:
            submit(view, user, ids.decode_metadata(view.get("private_metadata")))
        except OrchestratorError as exc:
            self._dm(user, f":no_entry_sign: {exc}")
        except Exception:
            log.exception("modal submission failed")
            self._dm(user, ":boom: Something went wrong on our side; the logs have the details.")

    def _submit_input(self, view: Mapping[str, Any], user: str, meta: Mapping[str, Any]) -> None:
        item = self._interaction(meta["interaction"])
        self.orch.decide(item.id, user, submissions.parse_input_submission(item, _values(view)))

    def _submit_reason(self, view: Mapping[str, Any], user: str, meta: Mapping[str, Any]) -> None:
        reason = submissions.parse_reason(_values(view))
        self.orch.decide(meta["interaction"], user, "reject", reason)

    def _submit_params(self, view: Mapping[str, Any], user: str, meta: Mapping[str, Any]) -> None:
        workflow = self.orch.workflow(meta["workflow"])
        params = submissions.parse_params_submission(workflow, _values(view),
                                                     view.get("private_metadata"))  # fmt: skip
        run_id = run_id_for(f"view|{view.get('id')}")  # a modal is submitted (validly) once
        if not self._exists(run_id):
            self.orch.start_run(workflow.name, params, started_by=user, front_end="slack",
                                channel=meta.get("channel"), run_id=run_id)  # fmt: skip

    def _submit_edited_params(
        self, view: Mapping[str, Any], user: str, meta: Mapping[str, Any]
    ) -> None:
        item = self._interaction(meta["interaction"])
        workflow = self._editable(self.orch.view(item.run_id), item)
        changed = submissions.parse_params_submission(workflow, _values(view),
                                                      view.get("private_metadata"))  # fmt: skip
        reason = submissions.parse_reason(_values(view))
        self.orch.decide(item.id, user, "approve", reason, params=changed)

    def _dm(self, user: str, text: str) -> None:
        # A modal has no response_url: tell the person in the app's DM with them.
        self.client.chat_postMessage(channel=user, text=text)


def _values(view: Mapping[str, Any]) -> Mapping[str, Any]:
    """A submitted view's `state.values`: block_id -> action_id -> element state."""
    return view.get("state", {}).get("values", {})
