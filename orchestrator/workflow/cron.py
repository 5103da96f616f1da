"""Crontab expressions: parsed with the bad field named, and their fire instants across DST.

APScheduler's `CronTrigger` does the calendar arithmetic, but its 3.x series differs
from crontab in three ways that would misfire a schedule, so this module stands between:

- weekday numbers: crontab's 0 (and 7) is Sunday, APScheduler's 0 is Monday, so
  "1-5" would run Tuesday to Saturday. The weekday field is rewritten as names.
- day of month and day of week both restricted ("0 0 1 * mon") means either one in
  crontab, both in APScheduler: such an expression becomes two triggers.
- DST: across a fall-back it returns the repeated wall time twice and can then get
  stuck returning an instant in the past. Here the triggers only walk wall-clock time
  (as if it were UTC) and the mapping to instants follows cron's rule:
  an expression whose hour field is `*` fires every real hour (the repeated hour
  twice, the skipped hour not at all: nothing lost, nothing doubled in elapsed time);
  any other expression fires each wall time once: the first occurrence of a repeated
  time, and a time skipped by spring-forward as far after the jump as it was after
  the last valid time ("30 2 * * *" at 03:30 on that day in Europe/Berlin).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-7 or sun-sat (0 and 7 are Sunday)")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_ITEM = re.compile(r"(\*|[a-z]{3}|\d{1,2})(?:-([a-z]{3}|\d{1,2}))?(?:/(\d{1,2}))?")


class CronError(ValueError):
    """A crontab expression that cannot be used: what is wrong and how to write it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message} ({hint})")
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the triggers that walk wall-clock time, and its DST rule."""

    text: str
    triggers: tuple[CronTrigger, ...]
    every_hour: bool  # the hour field is `*`: fire by elapsed time across DST changes

    def next_wall(self, wall: datetime) -> datetime | None:
        """The first matching wall-clock time after the naive `wall`; None if never."""
        start = wall.replace(tzinfo=UTC) + timedelta(seconds=1)
        found = [t.get_next_fire_time(None, start) for t in self.triggers]
        times = [f for f in found if f is not None]
        return min(times).replace(tzinfo=None) if times else None


@functools.lru_cache(maxsize=4096)
def parse_cron(text: str) -> Cron:
    """Parse 5 crontab fields or an alias (@hourly, @daily, ...); CronError names the bad part."""
    expression = text.strip().lower()
    if expression.startswith("@"):
        if expression not in ALIASES:
            close = difflib.get_close_matches(expression, ALIASES, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(ALIASES)}"
            raise CronError(f"unknown cron alias `{text.strip()}`", hint)
        expression = ALIASES[expression]
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"cron `{text.strip()}` has {len(fields)} fields, not 5", _count_hint(fields)
        )
    minute, hour, day, month, weekday = fields
    for index, value in enumerate(fields[:4]):
        _check_field(index, value)
    days = _weekdays(weekday)
    both = not day.startswith("*") and not weekday.startswith("*")
    shapes = [(day, "*"), ("*", days)] if both else [(day, days)]
    triggers = tuple(
        CronTrigger(minute=minute, hour=hour, day=d, month=month, day_of_week=w, timezone=UTC)
        for d, w in shapes
    )
    cron = Cron(text=text.strip(), triggers=triggers, every_hour=hour == "*")
    if cron.next_wall(datetime(2000, 1, 1)) is None:
        raise CronError(f"cron `{text.strip()}` never fires", "check the day of month and month")
    return cron


def next_fire(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The first instant (aware UTC) after `after` at which `cron` fires in `timezone`."""
    parsed, zone = parse_cron(cron), ZoneInfo(timezone)
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None)
    # In the first pass through a repeated hour, the second pass's wall times lie behind.
    wall -= _repeat(wall, zone) if local.fold == 0 else timedelta(0)
    best: datetime | None = None
    while (wall := parsed.next_wall(wall)) is not None:  # type: ignore[assignment]
        if best is not None and _at(wall, zone, 0) >= best:
            return best
        for instant in _instants(wall, zone, parsed.every_hour):
            if instant > after and (best is None or instant < best):
                best = instant
    return best


def _instants(wall: datetime, zone: ZoneInfo, every_hour: bool) -> list[datetime]:
    first, second = _at(wall, zone, 0), _at(wall, zone, 1)
    skipped = first.astimezone(zone).replace(tzinfo=None) != wall
    if skipped:
        return [] if every_hour else [first]
    return [first, second] if every_hour and second != first else [first]


def _at(wall: datetime, zone: ZoneInfo, fold: int) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _repeat(wall: datetime, zone: ZoneInfo) -> timedelta:
    """How long `wall` repeats (a fall-back's length), or zero for a wall time that occurs once."""
    gap = _at(wall, zone, 1) - _at(wall, zone, 0)
    return gap if gap > timedelta(0) else timedelta(0)


# ---------------------------------------------------------------- checking fields


def _check_field(index: int, value: str) -> None:
    name = ("minute", "hour", "day", "month")[index]
    try:
        CronTrigger(**{name: value}, timezone=UTC)
    except ValueError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise CronError(
            f"cron {FIELDS[index]} field `{value}` is invalid: {reason}",
            f"{FIELDS[index]} takes {_RANGES[index]}, *, lists a,b, ranges a-b and steps */n",
        ) from None


def _weekdays(field: str) -> str:
    """The crontab weekday field as APScheduler weekday names (Sunday is 0 or 7 in crontab)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        days.update(_weekday_item(item, field))
    return ",".join(_DAYS[d] for d in sorted(days))


def _weekday_item(item: str, field: str) -> set[int]:
    match = _DAY_ITEM.fullmatch(item)
    try:
        if match is None or (match[1] == "*" and match[2]):
            raise ValueError(item)
        first, last, step = match.groups()
        low = 0 if first == "*" else _day(first)
        high = _day(last) if last else (6 if first == "*" or step else low)
        if low > high or int(step or 1) < 1:
            raise ValueError(item)
        return {day % 7 for day in range(low, high + 1, int(step or 1))}
    except ValueError:
        raise CronError(
            f"cron day of week field `{field}` is invalid at `{item}`",
            f"day of week takes {_RANGES[4]}, *, lists a,b, ranges a-b and steps */n",
        ) from None


def _day(text: str) -> int:
    value = _DAYS.index(text) if text.isalpha() else int(text)
    if not 0 <= value <= 7:
        raise ValueError(text)
    return value


def _count_hint(fields: list[str]) -> str:
    if len(fields) == 6:
        return "seconds are not supported: write minute hour day-of-month month day-of-week"
    return 'write minute hour day-of-month month day-of-week, e.g. "0 3 * * 1-5", or @daily'
