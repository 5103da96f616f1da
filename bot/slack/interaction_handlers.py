"""What clicks on gate and schedule buttons and modal submissions do: a person answering
something the bot asked, or filling in a form it opened.

Run on the bot's work pool after Bolt has acked (bot/slack/handlers.py), except
`validate_submission`, which Slack needs in the ack itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from slack_sdk import WebClient

from bot.slack import ids, modals, submissions
from bot.slack.inbox import run_id_for
from bot.slack.replies import SORRY, Respond, mentions, run_exists, say
from bot.slack.schedule_blocks import render_schedules
from orchestrator.engine import Orchestrator
from orchestrator.errors import OrchestratorError
from orchestrator.protocol import InteractionView, RunView
from orchestrator.queries import interaction
from orchestrator.workflow.definitions import Workflow

log = logging.getLogger(__name__)


class InteractionHandlers:
    """Button clicks and modal submissions for one orchestrator and Slack client."""

    def __init__(self, orch: Orchestrator, client: WebClient) -> None:
        self.orch, self.client = orch, client

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
            say(respond, f":no_entry_sign: {mentions(str(exc))}")
        except Exception:
            log.exception("click failed")
            say(respond, SORRY)

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
            self._dm(user, SORRY)

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
        if not run_exists(self.orch, run_id):
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
