"""The one retry delay of the project: every loop that waits before trying again uses it.

Exponential with jitter (half to full of the step), so that many shippers restarting together
after an outage do not retry in step.
"""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(attempt: int, initial: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before try ``attempt`` (1-based): ``initial * 2**(attempt-1)``, capped,
    times a random factor in [0.5, 1)."""
    base = min(cap, initial * 2 ** max(0, attempt - 1))
    r = (rng or random).random()
    return base * (0.5 + r / 2)
