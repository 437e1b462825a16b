"""The meta benchmark: equal budgets, its jobs, the paired statistics and the verdict on
hand-built numbers, and a smoke run end to end (tiny budgets)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_benchmarks

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(meta="meta_classic")


def test_every_initialisation_gets_the_same_pretraining_budget(bench):
    meta, settings = bench.meta, bench.meta.META_SETTINGS
    per_iteration = settings["meta_batch_size"] * settings["inner_steps"]
    assert meta.iterations("reptile", 120_000) * per_iteration == 120_000
    fomaml = settings["meta_batch_size"] * (settings["inner_steps"] + settings["meta_query_steps"])
    assert meta.iterations("fomaml", 120_000) * fomaml == 120_000
    args = meta.parse_args(["--n-train", "8"])
    layout = bench.common.Layout(Path("r"), Path("o"))
    jobs = {job.name: job for job in meta.pretrain_jobs(args, 0, layout)}
    mt = jobs["multitask-seed0"].argv
    assert mt[mt.index("--steps") + 1] == str(120_000 // 8)
    assert "family:cartpole-physics:train:8" in mt


def test_adapt_jobs_share_tasks_ks_seed_and_settings(bench):
    args = bench.meta.parse_args(["--ks", "0", "500", "--seeds", "3"])
    jobs = bench.meta.adapt_jobs(args, 3, bench.common.Layout(Path("r"), Path("o")))
    assert [j.info["init"] for j in jobs] == ["reptile", "fomaml", "multitask", "scratch"]

    def shared(argv):  # everything but the model and the output folder
        out = argv.index("--out")
        return tuple(argv[2:out] + argv[out + 2 :])

    assert len({shared(j.argv) for j in jobs}) == 1
    assert jobs[-1].argv[1] == "scratch"
    assert "0,500" in jobs[0].argv and "3" in jobs[0].argv


def rows(init, values):
    return [{"init": init, "task": f"t{i}", "seed": 0, "k": 0, "return": v}
            for i, v in enumerate(values)]  # fmt: skip


def test_paired_differences_and_the_verdict_on_hand_built_numbers(bench):
    data = rows("a", [10.0, 12.0]) + rows("b", [4.0, 6.0]) + rows("c", [1.0, 1.0])
    diffs = bench.meta.paired_differences(data, "b")
    assert diffs["a"][0] == (6.0, 6.0, 6.0)  # 10-4 and 12-6: both 6
    assert diffs["c"][0][0] == pytest.approx(-4.0)
    summary = bench.meta.adapt_summary(data)
    pairwise = {base: bench.meta.paired_differences(data, base) for base in summary}
    (line,) = bench.meta.verdict(summary, pairwise)
    assert line.startswith("- k = 0: a is best (11.0), ahead of b (5.0)")


def test_a_tiny_benchmark_runs_end_to_end(tmp_path):
    command = [
        sys.executable, str(BENCH_DIR / "meta_classic.py"), "--pretrain-steps", "2000",
        "--ks", "0", "100", "--n-train", "2", "--n-held-out", "1", "--seeds", "0",
        "--workers", "2", "--out-dir", str(tmp_path / "out"), "--run-root", str(tmp_path / "runs"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = (tmp_path / "out" / "meta_classic_cartpole-physics.md").read_text()
    for init in ("reptile", "fomaml", "multitask", "scratch"):
        assert f"| {init} |" in report
    assert "## Verdict" in report


def test_diverged_names_only_inits_whose_q_exceeds_any_return_on_every_seed(bench):
    pretrain = [{"init": "a", "name": "a0"}, {"init": "a", "name": "a1"},
                {"init": "b", "name": "b0"}, {"init": "b", "name": "b1"}]  # fmt: skip
    qs = {"a0": 150.0, "a1": 700.0, "b0": 150.0, "b1": 50.0}
    (line,) = bench.meta.diverged(pretrain, qs)
    assert line.startswith("- a: Q at start 150 to 700 over the seeds, beyond +-100")
    assert bench.meta.diverged([{"init": "c", "name": "c0"}], {"c0": -120.0})  # too negative
