"""How long a chain of steps is still ahead of each step: the order ready steps start in.

When ready steps outnumber the slots `max_parallel` leaves, starting them in file order
can leave the longest chain for last (six short steps listed before a chain of three
take the two slots first, and the run ends one step later than it could). List
schedulers (HEFT) start the step on the longest remaining path first; with no
durations known, the path is counted in steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def path_lengths(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Per node of {node: its needs}, the number of nodes on the longest path from it to
    the end, itself included (1 for a node nothing needs). Iterative, in Kahn's order:
    a 10,000-step chain would overflow a recursive walk. Needs that are not keys of
    `graph` are ignored; the loader has already refused cycles."""
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, needs in graph.items():
        for need in needs:
            if need in dependents:
                dependents[need].append(node)
    left = {node: len(dependents[node]) for node in graph}
    todo = [node for node in graph if not left[node]]
    length: dict[str, int] = {}
    while todo:
        node = todo.pop()
        length[node] = 1 + max((length[d] for d in dependents[node]), default=0)
        for need in graph[node]:
            if need in left:
                left[need] -= 1
                if not left[need]:
                    todo.append(need)
    return length
