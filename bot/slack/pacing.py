"""Slack's posting rate, kept without sleeping: who may post now, and who must wait.

Slack takes about one chat.postMessage per second per channel (short bursts
tolerated) and answers 429 with Retry-After beyond that. The dispatcher asks
the pacer which channels must wait and leaves their rows in the outbox while it
sends other channels' rows; nothing here ever sleeps, so one busy channel
cannot delay another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Deferred(Exception):
    """Raised by a `send` that must not go now (Slack said 429): the row waits `seconds`
    in the outbox with a not-before time, and it does not count as a failed attempt."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"{reason}; waiting {seconds:.1f} s")
        self.seconds = max(0.0, seconds)


def is_edit(kind: str) -> bool:
    """Edits (chat.update) are not paced per channel; posts are."""
    return kind.endswith(".update")


class ChannelPacer:
    """A token bucket per channel: `per_second` posts a second, `burst` in a row at most."""

    def __init__(
        self,
        per_second: float = 1.0,
        burst: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError(
                f"pacing needs per_second > 0 and burst >= 1, not {per_second} and {burst}"
            )
        self.per_second, self.burst = per_second, burst
        self.monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._holds: dict[str, float] = {}  # channel -> monotonic time a Retry-After ends
        self._lock = threading.Lock()

    def _tokens(self, channel: str, now: float) -> float:
        tokens, at = self._buckets.get(channel, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_second)

    def take(self, channel: str) -> None:
        """Spend one post of `channel`'s allowance (call it when the post is handed out)."""
        with self._lock:
            now = self.monotonic()
            self._buckets[channel] = (self._tokens(channel, now) - 1, now)

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said 429: nothing goes to `channel` for `seconds`."""
        with self._lock:
            until = self.monotonic() + seconds
            self._holds[channel] = max(until, self._holds.get(channel, 0.0))

    def waiting(self) -> tuple[set[str], set[str]]:
        """(channels whose posts must wait, channels where nothing may go now)."""
        with self._lock:
            now = self.monotonic()
            self._holds = {c: t for c, t in self._holds.items() if t > now}
            empty = {c for c in self._buckets if self._tokens(c, now) < 1}
            full = [c for c in self._buckets if self._tokens(c, now) >= self.burst]
            for channel in full:  # forget idle channels: memory stays bounded
                del self._buckets[channel]
            return empty, set(self._holds)

    def next_change(self) -> float | None:
        """Seconds until a waiting channel may go again, or None when none waits."""
        with self._lock:
            now = self.monotonic()
            times = [t - now for t in self._holds.values() if t > now]
            times += [(1 - self._tokens(c, now)) / self.per_second for c in self._buckets
                      if self._tokens(c, now) < 1]  # fmt: skip
        return max(0.0, min(times)) if times else None
