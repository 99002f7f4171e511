"""Whether a state dict fits a model: the one check behind every checkpoint loader's error message."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

LISTED_KEYS = 6  # how many offending keys an error message names


def listed(keys: Sequence[str]) -> str:
    """The first LISTED_KEYS keys, and how many there are in all when more."""
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > LISTED_KEYS else "")


def fit_problems(shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                 name: Callable[[str], str] = lambda key: key) -> list[str]:
    """What keeps a state dict (its keys' shapes) from being exactly `expected`: missing keys,
    unexpected keys, wrong shapes, each listed by `name(key)` (empty: it fits)."""
    missing = [name(k) for k in expected if k not in shapes]
    unexpected = [name(k) for k in shapes if k not in expected]
    wrong_shape = [f"{name(k)} {tuple(shapes[k])} (expected {tuple(expected[k])})"
                   for k in expected if k in shapes and tuple(shapes[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing keys: {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {listed(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {listed(wrong_shape)}")
    return problems
