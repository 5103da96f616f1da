"""Values made storable in every database before a step's result is recorded.

PostgreSQL refuses a NUL character in text and in JSON (`\\u0000`), and no database
driver encodes a lone surrogate (what `surrogateescape` leaves of undecodable bytes):
a step that printed either made every pass that tried to record it fail, so the run
stayed `running` forever. Both are replaced by U+FFFD, as a decoder replaces bytes it
cannot read, so what a step printed is kept, legibly, everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` without NUL characters or lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def storable(value: Any) -> Any:
    """A JSON-like value with every string (keys included) made storable (None stays None)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
