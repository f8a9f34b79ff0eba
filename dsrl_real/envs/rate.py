"""Keeps a control loop at a steady rate and counts every overrun instead of hiding it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RateStats:
    periods_s: list[float] = field(default_factory=list)
    overruns: int = 0

    def jitter_ms(self, nominal_s: float, quantile: float = 0.99) -> float:
        if not self.periods_s:
            return 0.0
        return float(np.quantile(np.abs(np.asarray(self.periods_s) - nominal_s), quantile) * 1e3)


class RateKeeper:
    """Call `wait()` once per cycle; it returns when the next period starts.

    An overrun (the work took longer than the period) is counted and the schedule restarts from
    now, so the loop never tries to catch up by running short periods.
    """

    def __init__(self, hz: float, clock=time.perf_counter, sleep=time.sleep):
        if not (math.isfinite(hz) and hz > 0):  # `hz <= 0` alone would let NaN through
            raise ValueError(f"Control rate must be positive and finite, got {hz} Hz.")
        self.period_s = 1.0 / hz
        self._clock, self._sleep = clock, sleep
        self.stats = RateStats()
        self._deadline: float | None = None
        self._last_tick: float | None = None

    def start(self) -> None:
        now = self._clock()
        self._deadline, self._last_tick = now + self.period_s, now

    def wait(self) -> bool:
        """Sleep until the end of the current period. Returns False if the period was overrun."""
        if self._deadline is None:
            self.start()
        on_time = self._clock() <= self._deadline
        if on_time:
            self._sleep(max(0.0, self._deadline - self._clock()))
        else:
            self.stats.overruns += 1
        now = self._clock()
        self.stats.periods_s.append(now - self._last_tick)
        self._last_tick = now
        self._deadline = (self._deadline if on_time else now) + self.period_s
        return on_time
