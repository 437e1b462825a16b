"""The saved-replay benchmark: every layout round-trips, and the compact ones are smaller."""

from __future__ import annotations

import numpy as np
from conftest import load_benchmarks


def test_each_layout_loads_back_and_the_compact_ones_are_smaller(tmp_path):
    bench = load_benchmarks(files="replay_files").files
    rng = np.random.default_rng(0)
    frames = rng.random((401, 1, 4, 10, 10)) < 0.05  # one episode: next_obs is the next obs
    arrays = {"a/obs": frames[:-1], "a/next_obs": frames[1:],
              "a/actions": rng.integers(0, 6, (400, 1)), "env_steps": np.array(400)}  # fmt: skip
    results = bench.measure(arrays, 1, tmp_path)
    assert list(results) == list(bench.LAYOUTS)
    sizes = [results[name]["MB"] for name in bench.LAYOUTS]
    assert sizes[0] > 8 * sizes[1] and sizes[1] > 1.5 * sizes[2]
