"""The `env:` and `access:` blocks of a workflow (and `env:` of a step).

Internal to `orchestrator.workflow.loader`. `env:` is the only way a value of the bot's
environment reaches a step (docs/security.md): each variable is a literal string or
`{from_env: NAME}`, and the bot's own settings can never be named.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode

from orchestrator.workflow.definitions import Access, EnvValue
from orchestrator.workflow.gate_definitions import Approvers
from orchestrator.workflow.yaml_converters import nested_value, slack_id_list, text_list
from orchestrator.workflow.yaml_nodes import Context, mapping_pairs, read_field

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}")
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")
RESERVED_PREFIX = "OPSLOOP_"  # the bot sets OPSLOOP_RUN_ID and OPSLOOP_STEP_ID itself


def is_bot_setting(name: str) -> bool:
    """The bot's own settings and credentials: never passed to a step, by any name."""
    upper = name.upper()
    return upper.startswith(("SLACK_", RESERVED_PREFIX)) or upper == "DATABASE_URL"


def read_env(ctx: Context, node: Node, key: str) -> tuple[EnvValue, ...] | None:
    hint = "write NAME: value, or NAME: {from_env: VARIABLE} to pass one of the bot's"
    values: list[EnvValue] = []
    before = len(ctx.items)
    for key_node, name, value in mapping_pairs(ctx, node, key, hint) or ():
        if not _VAR.fullmatch(name):
            ctx.add(key_node, f"`{name}` is not an environment variable name",
                    "use letters, digits and _, not starting with a digit")  # fmt: skip
        elif name.upper().startswith(RESERVED_PREFIX):
            hint = f"names starting with {RESERVED_PREFIX} are the bot's; pick another"
            ctx.add(key_node, f"{key} may not set `{name}`", hint)
        values.append(_env_value(ctx, name, value))
    return tuple(values) if len(ctx.items) == before else None


def _env_value(ctx: Context, name: str, node: Node) -> EnvValue:
    if isinstance(node, ScalarNode):
        return EnvValue(name, value=node.value)
    if not isinstance(node, MappingNode):
        ctx.add(node, f"env `{name}` must be text or {{from_env: VARIABLE}}", "quote the value")
        return EnvValue(name, value="")
    pairs = mapping_pairs(ctx, node, f"env `{name}`", "write {from_env: VARIABLE}") or []
    if [key for _, key, _ in pairs] != ["from_env"] or not isinstance(pairs[0][2], ScalarNode):
        ctx.add(node, f"env `{name}` must be {{from_env: VARIABLE}}", "from_env is the only key")
        return EnvValue(name, value="")
    source_node = pairs[0][2]
    source = str(source_node.value)
    if not _VAR.fullmatch(source):
        ctx.add(source_node, f"`{source}` is not an environment variable name",
                "name one of the bot's environment variables, like DEPLOY_TOKEN")  # fmt: skip
    elif is_bot_setting(source):
        ctx.add(source_node, f"env `{name}` may not pass the bot's own setting {source}",
                "SLACK_*, DATABASE_URL and OPSLOOP_* never reach a step; give the step "
                "a credential of its own (docs/security.md)")  # fmt: skip
    return EnvValue(name, from_env=source)


def _channels(ctx: Context, node: Node, key: str) -> tuple[str, ...] | None:
    channels = text_list(ctx, node, key)
    bad = [c for c in channels or () if not _CHANNEL.fullmatch(c)]
    if bad:
        ctx.add(node, f"{', '.join(bad)} in {key} is not a Slack channel id",
                "use ids like C012AB3CD (channel details > About, at the bottom)")  # fmt: skip
        return None
    return channels


_WHO = nested_value(
    {"users": ("users", slack_id_list(_USER, "U012AB3CD")),
     "groups": ("groups", slack_id_list(_GROUP, "S012AB3CD"))},
    Approvers,
)  # fmt: skip
_ACCESS = {
    "run": ("run", _WHO),
    "channels": ("channels", _channels),
    "cancel": ("cancel", _WHO),
    "retry": ("retry", _WHO),
}


def read_access(ctx: Context, node: Node, key: str) -> Access | None:
    before = len(ctx.items)
    values, _ = read_field(ctx, node, _ACCESS, "access")
    if len(ctx.items) > before:
        return None
    return Access(**{k: v for k, v in values.items() if v is not None})
