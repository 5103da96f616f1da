"""Walks over a workflow's step graph, given as {step id: the ids it needs}: levels in
dependency order, everything a step needs, and a cycle when there is one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def topological_levels(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Kahn's algorithm by levels; needs that are not keys of `graph` are ignored."""
    remaining = {node: {n for n in needs if n in graph} for node, needs in graph.items()}
    levels: list[list[str]] = []
    while remaining:
        ready = [node for node, needs in remaining.items() if not needs]
        if not ready:
            raise ValueError(f"cycle among steps: {' -> '.join(find_cycle(graph) or [])}")
        levels.append(ready)
        for node in ready:
            del remaining[node]
        for needs in remaining.values():
            needs.difference_update(ready)
    return levels


def transitive_needs(graph: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Everything `node` needs directly or indirectly; safe on cycles and unknown ids."""
    seen, stack = set[str](), list(graph.get(node, ()))
    while stack:
        current = stack.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        stack.extend(graph[current])
    return seen


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a closed path `[a, b, c, a]` (a needs b needs c needs a), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    for start in graph:
        if state.get(start):
            continue
        path, iters, state[start] = [start], [iter(graph[start])], 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif nxt in graph and state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt in graph and not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph[nxt]))
    return None
