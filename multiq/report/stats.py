"""Statistics over seeds for reports (numpy only; never the global RNG)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def bootstrap_ci(
    values: Iterable[float],
    confidence: float = 0.95,
    resamples: int = 10_000,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """The mean of `values` and its percentile-bootstrap confidence interval.

    NaNs are dropped first (a seed whose metric is undefined does not count).

    Args:
        values: one number per seed (or per task, ...).
        confidence: the interval's coverage, in (0, 1); 0.95 gives the 2.5th and 97.5th
            percentiles of the resampled means.
        resamples: how many resamples (with replacement, of the same size) to draw.
        rng: the random generator to resample with; default `np.random.default_rng(0)`, so a
            report is the same every time it is rebuilt.

    Returns:
        (mean, low, high); (v, v, v) when all values are equal (one value included);
        (nan, nan, nan) when there is no value left.

    Raises:
        ValueError: `confidence` is not in (0, 1) or `resamples` < 1.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    sample = np.asarray(list(values), dtype=np.float64).ravel()
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        return float("nan"), float("nan"), float("nan")
    if np.all(sample == sample[0]):
        # Exact, where averaging copies of v could round to a neighbour of v.
        value = float(sample[0])
        return value, value, value
    rng = np.random.default_rng(0) if rng is None else rng
    picks = rng.integers(0, sample.size, size=(resamples, sample.size))
    means = sample[picks].mean(axis=1)
    tail_percent = 50.0 * (1.0 - confidence)
    low, high = np.percentile(means, [tail_percent, 100.0 - tail_percent])
    return float(sample.mean()), float(low), float(high)
