"""The stage graph of a recipe: order, cycles, and which stages a selection touches.

A graph is a mapping `stage id -> ids it needs`. Nothing here knows what a stage does.
"""

from __future__ import annotations


def find_cycle(needs: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a path `[a, b, ..., a]`, or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for dep in needs.get(node, []):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state and dep in needs:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in needs:
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def topological_order(needs: dict[str, list[str]], declared: list[str]) -> list[str]:
    """Every stage after the stages it needs; otherwise in the order the recipe declares them."""
    order: list[str] = []
    remaining = list(declared)
    while remaining:
        ready = next(s for s in remaining if all(d in order for d in needs.get(s, [])))
        order.append(ready)
        remaining.remove(ready)
    return order


def ancestors(needs: dict[str, list[str]], ids: set[str]) -> set[str]:
    """Every stage that `ids` depend on, directly or not (without `ids` themselves)."""
    seen: set[str] = set()
    stack = [dep for sid in ids for dep in needs.get(sid, [])]
    while stack:
        sid = stack.pop()
        if sid not in seen:
            seen.add(sid)
            stack += needs.get(sid, [])
    return seen - set(ids)


def descendants(needs: dict[str, list[str]], ids: set[str]) -> set[str]:
    """Every stage that depends on `ids`, directly or not (without `ids` themselves)."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for sid, deps in needs.items():
            if sid not in found and sid not in ids and any(d in ids or d in found for d in deps):
                found.add(sid)
                changed = True
    return found


def selection(needs: dict[str, list[str]], only: list[str], until: list[str]) -> set[str]:
    """The stages to run: all; or `--only` ones plus `--until` ones with everything they need."""
    if not only and not until:
        return set(needs)
    return set(only) | set(until) | ancestors(needs, set(until))
