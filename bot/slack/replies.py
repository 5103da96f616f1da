"""How the handlers answer the person who asked: privately, through the request's
response_url, naming people as Slack shows them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from orchestrator.engine import Orchestrator
from orchestrator.errors import NotFound

Respond = Callable[..., Any]
SORRY = ":boom: Something went wrong on our side; the logs have the details."

_USER_ID = re.compile(r"(?<![<@\w])([UW][A-Z0-9]{2,})\b")


def say(respond: Respond, text: str, **more: Any) -> None:
    """An ephemeral answer that leaves the message it answers as it was."""
    respond(text=text, response_type="ephemeral", replace_original=False, **more)


def mentions(text: str) -> str:
    """Orchestrator messages name people by id; Slack shows `<@U123>` as their name."""
    return _USER_ID.sub(r"<@\1>", text)


def run_exists(orch: Orchestrator, run_id: str) -> bool:
    """True once the run `run_id` was started (a redone request must not start it twice)."""
    try:
        orch.view(run_id)
    except NotFound:
        return False
    return True
