"""Power laws: fitting the exponent k of y ∝ x^k from measurements.

Used for cost curves (time against sequence length) and, later, for loss against model size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def fit_loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the exponent k in y ∝ x^k."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("fit_loglog_slope needs two equally long sequences of at least 2 points.")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("fit_loglog_slope needs positive values (it takes logarithms).")
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    if var == 0:
        raise ValueError("fit_loglog_slope needs at least two different x values.")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / var
