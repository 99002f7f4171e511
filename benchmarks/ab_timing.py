"""The A/B timing loop of the speed scripts whose official code runs in our process (zsseg_speed,
ovseg_speed, zegformer_speed): the arms alternate forward by forward, so the load of other
processes falls on all alike."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable


def alternate(arms: dict[str, Callable[[], object]], rounds: int) -> tuple[dict, dict, dict]:
    """(outputs, seconds, loads): each arm's output of one untimed warm-up call, then `rounds`
    rounds of one timed call per arm in turn (seconds per arm), with the 1-minute load average read
    before each timed call (loads per arm). Runs under `torch.no_grad()`."""
    import torch

    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    loads: dict[str, list[float]] = {arm: [] for arm in arms}
    with torch.no_grad():
        outputs = {arm: fn() for arm, fn in arms.items()}
        for _ in range(rounds):
            for arm, fn in arms.items():
                loads[arm].append(os.getloadavg()[0])
                start = time.perf_counter()
                fn()
                seconds[arm].append(time.perf_counter() - start)
    return outputs, seconds, loads


def rounded_summary(seconds: dict[str, list[float]], loads: dict[str, list[float]]) -> dict:
    """The timing fields of zsseg_speed's and zegformer_speed's reports: seconds per call and their
    median per arm (0.01 s), load averages (0.1) and ours' median over the official one's."""
    median = {arm: round(statistics.median(ts), 2) for arm, ts in seconds.items()}
    return {
        "seconds": {arm: [round(t, 2) for t in ts] for arm, ts in seconds.items()},
        "median_s": median,
        "load_avg_1min": {arm: [round(x, 1) for x in xs] for arm, xs in loads.items()},
        "ours_over_official": round(median["ours"] / median["official"], 3),
    }
