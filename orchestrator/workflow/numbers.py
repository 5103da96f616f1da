"""One rule for numbers people type, wherever they type them (CLI, Slack forms, params).

Written as digits with an optional sign and decimal point: `3`, `-12`, `2.5`. Whole
numbers are read exactly (never through a float, which turned 12345678901234567 into
...568) and must fit in 64 bits: a larger one was accepted, then crashed its step when
the checkpoint was written (issue 16). Exponents (`1e3`), `nan`, `inf`, `0x10` and
`1_000` are refused, since the CLI and Slack must agree on what a number is.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_INT = 2**63 - 1
_WHOLE = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")


class NumberError(ValueError):
    """Not a number by the rule; the message says what to type instead."""


def parse_number(raw: Any) -> int | float:
    """`raw` (typed text, or a JSON number) as an int, or a float when it has a fraction."""
    if isinstance(raw, bool):
        raise NumberError(f"{raw!r} is not a number; give digits, like 3 or 2.5")
    if isinstance(raw, int):
        return _whole(raw, str(raw))
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise NumberError(f"{raw!r} is not a number; give digits, like 3 or 2.5")
        return _whole(int(raw), repr(raw)) if raw.is_integer() else raw
    text = raw.strip() if isinstance(raw, str) else None
    if text is not None and _WHOLE.fullmatch(text):
        return _whole(int(text), text)
    if text is not None and _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return _whole(int(number), text) if number.is_integer() else number
    hint = " (write 1000, not 1e3)" if text and re.search(r"\d[eE][+-]?\d", text) else ""
    raise NumberError(f"{raw!r} is not a number{hint}; give digits, like 3 or 2.5")


def parse_whole(raw: Any) -> int:
    """`raw` as a whole number by the same rule (2.0 counts; 2.5 does not)."""
    number = parse_number(raw)
    if isinstance(number, float):
        raise NumberError(f"{raw!r} is not a whole number; give digits only, like 3")
    return number


def _whole(number: int, text: str) -> int:
    if abs(number) > MAX_INT:
        raise NumberError(
            f"{text} is too large: whole numbers go up to {MAX_INT:,} either way; "
            "for longer ids, use a text field"
        )
    return number
