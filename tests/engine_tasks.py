"""Task functions the engine tests run (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import time


def mark(params: dict, needs: dict) -> dict:
    path = params.get("log")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {params.get('tag', '')}\n")
    return {"at": time.monotonic(), "needs": sorted(needs)}


def confidence(params: dict) -> dict:
    return {"confidence": 0.95}
