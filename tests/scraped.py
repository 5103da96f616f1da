"""Reading metrics as Prometheus would: the exposition text, parsed by prometheus_client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import DatabaseCollector

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(body: bytes) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}  # fmt: skip


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def collected(
    engine: sa.Engine, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Samples:
    """What `serve`'s /metrics says from the database and the process counters."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine, now, lambda: (0, 0.0)))
    return parsed(generate_latest(registry))
