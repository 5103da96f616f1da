"""The second line of defence: the bot's own secrets cut out of what a step reports.

Steps never get the bot's secrets (orchestrator/step_env.py), but a step can still
come by one (a file it reads, a python task that imports the bot's settings). Whatever
a step returns or fails with is stored, shown and posted; `Scrubber` replaces every
secret value in it before any of that happens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words and numbers


class Scrubber:
    """Replaces each of the given secret values, wherever it appears in text or JSON."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len)
        # Longest first, so a secret that contains another is cut out whole.
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in reversed(values))) if values else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """`text` without any secret in it."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """A JSON value (dicts, lists, strings...) with every string scrubbed, keys too."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def secret_values(env: Mapping[str, str], database_url: str | None = None) -> list[str]:
    """The bot's own secrets in `env`: Slack's tokens and signing secret, the database
    URL and the password inside it (a step printing its connection string in pieces)."""
    found = [v for k, v in env.items() if k.upper().startswith("SLACK_")
             and any(word in k.upper() for word in ("TOKEN", "SECRET"))]  # fmt: skip
    for url in (database_url, env.get("DATABASE_URL")):
        if url:
            found.append(url)
            password = urlsplit(url).password
            if password:
                found += [password, unquote(password)]
    return found
