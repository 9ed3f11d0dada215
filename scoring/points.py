"""Points as exact integers: decay as a fixed-point factor per whole day, and point sequences.

Every rule's points are integers of 1/10,000 point (``_values.UNIT``); decay multiplies them by a factor
of 2**16, and ``scaled`` rounds the exact sum back to units once per rule, so the row path and the
columnar path (which share these tables) agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._values import UNIT
from .columns import I64

FACTOR_SHIFT = 16
FACTOR_ONE = 1 << FACTOR_SHIFT


class Decay:
    """Decay as a fixed-point factor: ``round(0.5 ** (age_days / half_life_days) * 2**16)``, per whole day.

    Points times factor are then exact integers, summed exactly and rounded once per rule
    (``scaled``), so both paths agree bit for bit and the rearrangement inequality holds exactly (which
    is what makes "adding an activity never lowers a score" hold exactly, not just up to rounding).
    """

    def __init__(self, half_life_days: float) -> None:
        self.half_life_days = half_life_days
        self._memo: dict[int, int] = {}
        self._dense: I64 = np.zeros(0, dtype=np.int64)

    def factor(self, days: int) -> int:
        found = self._memo.get(days)
        if found is None:
            found = round(0.5 ** (days / self.half_life_days) * FACTOR_ONE)
            if len(self._memo) > 500_000:
                self._memo.clear()
            self._memo[days] = found
        return found

    def factors(self, days: I64) -> I64:
        """``factor`` of each element, through a dense per-day table built from ``factor`` itself."""
        if not len(days):
            return np.zeros(0, dtype=np.int64)
        top = int(days.max())
        if top > 200_000:  # centuries ago: not worth a dense table
            uniq, inverse = np.unique(days, return_inverse=True)
            sparse = np.array([self.factor(d) for d in uniq.tolist()], dtype=np.int64)
            result: I64 = sparse[inverse.reshape(-1)]
            return result
        if len(self._dense) <= top:
            size = max(top + 1, 2 * len(self._dense))
            self._dense = np.array([self.factor(d) for d in range(size)], dtype=np.int64)
        dense: I64 = self._dense[days]
        return dense


def scaled(total: int) -> int:
    """A sum of points x fixed-point factors back to units, rounding halves up."""
    return (total + FACTOR_ONE // 2) >> FACTOR_SHIFT


def scaled_vec(total: I64) -> I64:
    result: I64 = (total + FACTOR_ONE // 2) >> FACTOR_SHIFT
    return result


def sum_by_lead(leads: I64, values: I64, n: int, bound: int) -> I64:
    """Per-lead sums of int64 values, exactly (``bincount`` goes through float64: fine below 2**53)."""
    if bound < 2**53:
        result: I64 = np.bincount(leads, weights=values, minlength=n).astype(np.int64)
        return result
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, leads, values)
    return out


def points_text(units: int) -> str:
    """Units as the points a person would write: ``10``, ``2.5``."""
    value = units / UNIT
    return str(int(value)) if value.is_integer() else f"{value:g}"


class PointTable:
    """The points earned by k occurrences of a sequence ``p0, p1, ..., pL-1, pL-1, ...`` (in units), the
    largest values going to the most recent occurrences (rank 0 = most recent)."""

    def __init__(self, points: tuple[int, ...]) -> None:
        self.points = points
        size = len(points)
        self.size = size
        self.last = points[-1]
        head = points[:-1]
        self.big = sorted((p for p in head if p > self.last), reverse=True)
        self.equal = sum(1 for p in head if p == self.last)
        self.small = sorted((p for p in head if p < self.last), reverse=True)
        self.prefix = [0]
        for p in points:
            self.prefix.append(self.prefix[-1] + p)
        # k < size: the sorted first k values
        table = np.zeros((size, max(size, 1)), dtype=np.int64)
        for k in range(size):
            for r, p in enumerate(sorted(points[:k], reverse=True)):
                table[k, r] = p
        self.short = table
        self.big_arr = np.array([*self.big, 0], dtype=np.int64)
        self.small_arr = np.array([*self.small, 0], dtype=np.int64)
        self.largest = max(abs(p) for p in points)
        self.prefix_arr = np.array(self.prefix, dtype=np.int64)

    def total(self, n: int) -> int:
        """Sum of the first n values (no decay)."""
        if n <= self.size:
            return self.prefix[n]
        return self.prefix[self.size] + (n - self.size) * self.last

    def total_vec(self, n: I64) -> I64:
        clipped = np.minimum(n, self.size)
        result: I64 = np.where(
            n <= self.size, self.prefix_arr[clipped], self.prefix[self.size] + (n - self.size) * self.last
        )
        return result

    def ranked(self, k: int) -> list[int]:
        """The k values sorted from largest to smallest."""
        values = [self.points[min(i, self.size - 1)] for i in range(k)]
        values.sort(reverse=True)
        return values

    def ranked_vec(self, k: I64, r: I64) -> I64:
        """The r-th largest of the first k values, for arrays of (k, r)."""
        out = np.zeros(len(k), dtype=np.int64)
        short = k < self.size
        if short.any():
            out[short] = self.short[k[short], r[short]]
        long_ = ~short
        if long_.any():
            kk, rr = k[long_], r[long_]
            n_big = len(self.big)
            n_last = kk - self.size + 1 + self.equal
            in_big = rr < n_big
            in_last = rr < n_big + n_last
            small_at = np.clip(rr - n_big - n_last, 0, max(len(self.small) - 1, 0))
            out[long_] = np.where(
                in_big,
                self.big_arr[np.minimum(rr, max(n_big - 1, 0))],
                np.where(in_last, self.last, self.small_arr[small_at]),
            )
        return out
