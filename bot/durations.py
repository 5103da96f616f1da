"""How long something took, as people read it: the one duration format of the CLI and Slack."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """ "850ms", "12.5s", "3m 05s", "2h 04m", each rounded to its last unit; "" when unknown.

    A value that rounds up to the next unit is shown in it ("1m 00s", never "60.0s").
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    if millis < 59_950:
        return f"{millis / 1000:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h {minutes:02d}m"
