"""The FOMAML outer-step sweep: each setting is the meta benchmark's FOMAML command with its own
optimiser, step size and run folder, and the report reads the last post-adaptation return."""

import math
from pathlib import Path

import pytest
from conftest import load_benchmarks


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(meta="meta_classic", sweep="fomaml_outer")


def test_a_setting_changes_only_the_outer_step_and_the_run_folder(bench):
    sweep, meta, common = bench.sweep, bench.meta, bench.common
    layout = common.Layout(Path("r"), Path("o"))
    args = sweep.parse_args(["--settings", "sgd:0.05", "--seeds", "2"])
    job = sweep.job(args, "sgd:0.05", 2, layout)
    meta_args = meta.parse_args(["--seeds", "2"])
    (base,) = [j for j in meta.pretrain_jobs(meta_args, 2, layout) if j.info["init"] == "fomaml"]
    changed = [(a, b) for a, b in zip(job.argv, base.argv, strict=True) if a != b]
    assert changed == [
        ("r/sgd-0.05-seed2", "r/fomaml-seed2"),
        ("meta_lr=0.05", "meta_lr=0.001"),
        ("meta_outer_optimizer=sgd", "meta_outer_optimizer=adam"),
    ]
    assert job.info == {"optimiser": "sgd", "meta_lr": 0.05, "seed": 2,
                        "family": "cartpole-physics"}  # fmt: skip
    with pytest.raises(SystemExit):
        sweep.parse_args(["--settings", "rmsprop:0.1"])


def test_the_report_reads_the_last_evaluated_iteration(bench):
    nan = math.nan
    rows = [
        {"post_return": 12.0},
        {"post_return": nan},
        {"post_return": 30.5},
        {"post_return": nan},
    ]
    assert bench.sweep.last_post_return({"meta_rows": rows}) == 30.5
    assert math.isnan(bench.sweep.last_post_return({"meta_rows": []}))
