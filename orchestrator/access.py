"""Who may do what: one policy that the CLI, Slack and schedules all go through.

- Start a workflow: the people its `access.run` names (anyone if it names nobody), from
  the channels `access.channels` names (Slack starts only; any if it names none).
- Cancel / retry a run: its requester, the people `access.cancel` / `access.retry`
  names, and admins. Crash-recovery questions: the same people as retry.
- See a run: people in its channel, its requester, the people its gates ask, admins.
- Admins (OPSLOOP_ADMINS) manage everything, but answer a gate only where it lists them:
  nobody bypasses four-eyes or the requester rule (that stays in gates.py).

Ids are compared as gates compare them (gates.person_key). Pure: the engine audits
refusals and raises NotAllowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.gates import person_key
from orchestrator.protocol import Directory
from orchestrator.schedules import ACTOR_PREFIX
from orchestrator.workflow.definitions import Workflow
from orchestrator.workflow.gate_definitions import Approvers

SLACK_GROUP_PREFIX = "S"


def parse_admins(text: str) -> Approvers:
    """OPSLOOP_ADMINS="U0LEAD,S0SRE": user ids, and user-group ids (S...)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    groups = tuple(i for i in items if i.upper().startswith(SLACK_GROUP_PREFIX))
    return Approvers(users=tuple(i for i in items if i not in groups), groups=groups)


@dataclass(frozen=True)
class AccessPolicy:
    admins: Approvers
    directory: Directory

    def names(self, user: str, who: Approvers) -> bool:
        """Whether `who` names `user`, directly or by a group (nobody named: False)."""
        key = person_key(user)
        return any(key == person_key(u) for u in who.users) or any(
            key == person_key(m) for g in who.groups for m in self.directory.members(g)
        )

    def is_admin(self, user: str) -> bool:
        return self.names(user, self.admins)

    def may_manage_schedules(self, user: str) -> bool:
        """Admins pause and resume schedules; with no admins configured, anyone may."""
        return not (self.admins.users or self.admins.groups) or self.is_admin(user)

    def run_refusal(self, user: str, workflow: Workflow, channel: str | None) -> str | None:
        """Why `user` may not start `workflow` (from Slack `channel`), or None if they may."""
        rule = workflow.access
        if rule.run is not None and not (self.names(user, rule.run) or self.is_admin(user)):
            return f"{user} may not run {workflow.name}; it may be run by {_who(rule.run)}"
        if channel is not None and rule.channels is not None and channel not in rule.channels:
            where = ", ".join(rule.channels)
            return f"{workflow.name} may only be run from {where}"
        return None

    def startable(self, user: str, workflows: Iterable[Workflow], channel: str | None) -> list[str]:
        """The names of `workflows` that `user` may start (from Slack `channel`)."""
        return [w.name for w in workflows if self.run_refusal(user, w, channel) is None]

    def may_change(self, user: str, requester: str, workflow: Workflow | None, what: str) -> bool:
        """Whether `user` may cancel (`what="cancel"`) or retry (`"retry"`) a run. A
        scheduled run has no person behind it: whoever manages schedules stands in. A run
        whose definition is gone (`workflow` None): its requester and admins."""
        if workflow is None:
            who = Approvers()
        else:
            who = workflow.access.cancel if what == "cancel" else workflow.access.retry
        if requester.startswith(ACTOR_PREFIX):
            mine = self.may_manage_schedules(user)
        else:
            mine = person_key(user) == person_key(requester)
        return mine or self.is_admin(user) or self.names(user, who)

    def recovery_answerers(self, requester: str, workflow: Workflow) -> Approvers:
        """Who may answer a crash-recovery question: whoever may retry the run (for a
        scheduled run with no admins set, anyone: nobody else could answer it)."""
        retry = workflow.access.retry
        scheduled = requester.startswith(ACTOR_PREFIX)
        if scheduled and not (self.admins.users or self.admins.groups):
            return Approvers()  # open: a scheduled run must not wait for nobody
        people = () if scheduled else (requester,)
        return Approvers(users=(*people, *retry.users, *self.admins.users),
                         groups=(*retry.groups, *self.admins.groups))  # fmt: skip

    def may_see(
        self, user: str, requester: str, run_channel: str | None, where: str | None,
        asked: Iterable[Approvers] = (),
    ) -> bool:  # fmt: skip
        """Whether `user`, asking from channel `where`, may see a run: in its channel, its
        requester, someone its gates ask (an open gate asks everyone), or an admin."""
        if where is not None and where == run_channel:
            return True
        if person_key(user) == person_key(requester) or self.is_admin(user):
            return True
        return any(who.is_open or self.names(user, who) for who in asked)


def _who(who: Approvers) -> str:
    return ", ".join([*who.users, *(f"group {g}" for g in who.groups)])
