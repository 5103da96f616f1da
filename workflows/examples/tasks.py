"""Python tasks used by the example workflows in workflows/examples/.

Each task takes keyword arguments `params` (the run's typed parameters) and
`needs` ({step id: outputs} of the steps it needs) and returns a dict of
outputs that later steps read as `steps.<id>.outputs.<key>`. They are fast and
touch nothing outside the process, so the examples run anywhere.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

Needs = Mapping[str, Mapping[str, Any]]


def build(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Pretend to build an image for the service and version."""
    time.sleep(0.05)
    tag = f"{params['service']}:{params['version']}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return {"image": f"registry.example/{tag}", "digest": digest}


def analyze(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Score the build; the deploy example auto-approves above 0.9 confidence."""
    image = needs["build"]["image"]
    risky = params["replicas"] > 5 or params["service"] == "api"
    return {
        "image": image,
        "risk": "high" if risky else "low",
        "confidence": 0.8 if risky else 0.95,
    }


def rollout(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Pretend to roll the image out with the strategy picked in the decision step."""
    strategy = needs.get("pick", {}).get("choice", "all_at_once")
    batches = 1 if strategy == "all_at_once" else min(params["replicas"], 3)
    return {
        "strategy": strategy,
        "batches": batches,
        "replicas": params["replicas"],
        "dry_run": params["dry_run"],
    }


def verify(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Check whichever rollout ran; the other one was skipped and has no outputs."""
    done = [out for out in needs.values() if out.get("strategy")]
    return {"healthy": bool(done), "checked": [out["strategy"] for out in done]}


def greet(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Say hello to `params.name`."""
    name = params["name"]
    return {"greeting": f"hello {name}", "length": len(name)}


def summarize(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """List the steps before it, and which of them produced outputs (skipped ones did not)."""
    return {"steps": sorted(needs), "with_outputs": sorted(k for k, v in needs.items() if v)}


def check_database(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Pretend to measure the database before maintenance."""
    size_gb = 10 * len(params["database"])
    return {"size_gb": size_gb, "needs_vacuum": size_gb > 40}


def vacuum(*, params: Mapping[str, Any], needs: Needs) -> dict[str, Any]:
    """Pretend to vacuum the database during the window the input step gave."""
    details = needs["details"]
    return {
        "database": params["database"],
        "ticket": details["ticket"],
        "window_minutes": details.get("minutes") or 30,
        "reclaimed_gb": round(needs["check"]["size_gb"] * 0.2, 1),
    }
