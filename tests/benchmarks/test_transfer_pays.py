"""The MiniGrid defaults screening (jobs, areas, ranking) and the transfer-that-pays benchmark
(settings, sources, arms' modes and keys, table rows), on hand-built numbers (an end-to-end smoke
run takes minutes: run the scripts with tiny budgets by hand)."""

from pathlib import Path

import pytest
from conftest import load_benchmarks


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(defaults="minigrid_defaults", pays="transfer_pays")


def flag_sets(argv) -> set[str]:
    return {argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"}


def test_the_defaults_screening_trains_every_candidate_on_every_layout_and_seed(bench):
    defaults = bench.defaults
    args = defaults.parse_args(["--seeds", "4", "5", "--steps", "3000",
                                "--candidates", "base", "nstep3-eps0.5"])  # fmt: skip
    jobs = defaults.all_jobs(args, bench.common.Layout(Path("r"), Path("o")))
    assert [j.name for j in jobs] == [
        f"{c}-{layout}-seed{s}"
        for c in ("base", "nstep3-eps0.5")
        for layout in ("DoorKey-5x5", "LavaGapS5")
        for s in (4, 5)
    ]
    base, tuned = jobs[0], jobs[-1]
    assert flag_sets(base.argv) == {"checkpoint_freq=0"}
    assert flag_sets(tuned.argv) == {
        "checkpoint_freq=0", "n_step=3", "exploration_fraction=0.5", "learning_rate=0.0005"
    }  # fmt: skip
    assert tuned.argv[tuned.argv.index("--steps") + 1] == "3000"
    assert tuned.argv[tuned.argv.index("--tasks") + 1] == "MiniGrid-LavaGapS5-v0"


def test_the_defaults_report_ranks_by_area_scaled_to_the_best_on_each_layout(bench):
    defaults = bench.defaults
    # the area leaves out the step-0 evaluation: (0.2 + 0.6 + 1.0) / 3
    assert defaults.area([[0, 0.9], [10, 0.2], [20, 0.6], [30, 1.0]]) == pytest.approx(0.6)

    def result(candidate, layout, seed, curve):
        return {"kind": "train", "candidate": candidate, "layout": layout, "seed": seed,
                "curves": {layout.rsplit("-v", 1)[0]: curve}}  # fmt: skip

    results = [
        result("a", "L1", 0, [[0, 0], [10, 0.4], [20, 0.8]]),  # area 0.6, final 0.8
        result("a", "L1", 1, [[0, 0], [10, 0.2], [20, 0.2]]),  # area 0.2, final 0.2
        result("b", "L1", 0, [[0, 0], [10, 0.8], [20, 0.8]]),  # area 0.8
        result("a", "L2", 0, [[0, 0], [10, 0.5], [20, 0.5]]),  # area 0.5
        result("b", "L2", 0, [[0, 0], [10, 0.1], [20, 0.1]]),  # area 0.1
    ]
    table = defaults.cells(results)
    assert table[("a", "L1")] == {"final": [0.8, 0.2], "area": [pytest.approx(0.6), 0.2]}
    scores = defaults.scaled_areas(table, ["a", "b"], ["L1", "L2"])
    # a: (0.4 / 0.8 + 0.5 / 0.5) / 2; b: (0.8 / 0.8 + 0.1 / 0.5) / 2
    assert scores == {"a": pytest.approx(0.75), "b": pytest.approx(0.6)}


def test_every_arm_learns_the_target_from_the_right_source_with_its_own_keys(bench):
    curriculum = bench.pays
    args = curriculum.parse_args(["--seeds", "1", "--targets", "MiniGrid-DoorKey-6x6-v0",
                                  "--target-steps", "2000"])  # fmt: skip
    assert (args.pretrain_steps, args.target_steps) == (50_000, 2000)
    assert args.run_root == Path("runs/transfer_pays_minigrid")
    jobs = curriculum.build_jobs(args)
    plain, regularised, *targets = jobs
    assert (plain.name, regularised.name) == ("source-plain-seed1", "source-regularised-seed1")
    assert {"weight_decay=0.1", "dropout=0.1"} <= flag_sets(regularised.argv)
    assert not any(s.startswith(("weight_decay", "dropout")) for s in flag_sets(plain.argv))
    assert plain.argv[plain.argv.index("--tasks") + 1] == "MiniGrid-DoorKey-5x5-v0"
    by_arm = {j.info["arm"]: j for j in targets}
    assert list(by_arm) == list(curriculum.ARMS)
    mode = {arm: j.argv[j.argv.index("--mode") + 1] for arm, j in by_arm.items()}
    assert mode == {"scratch": "scratch", "finetune": "finetune", "finetune-mean": "finetune",
                    "finetune-regpre": "finetune", "finetune-l2init": "finetune",
                    "progressive": "progressive", "progressive-mean": "progressive",
                    "distill": "distill"}  # fmt: skip
    assert by_arm["finetune-regpre"].after == "source-regularised-seed1"
    assert {j.after for a, j in by_arm.items() if a != "finetune-regpre"} == {"source-plain-seed1"}
    assert "head_init=fresh" in flag_sets(by_arm["finetune"].argv)
    assert "head_init=fresh" in flag_sets(by_arm["progressive"].argv)
    assert "head_init=mean" in flag_sets(by_arm["progressive-mean"].argv)
    # only the pre-training is regularised
    assert {"weight_decay=0.0", "dropout=0.0"} <= flag_sets(by_arm["finetune-regpre"].argv)
    assert {"head_init=mean", "l2_init=0.01"} <= flag_sets(by_arm["finetune-l2init"].argv)
    assert all(j.info["target"] == "MiniGrid-DoorKey-6x6" for j in targets)
    # without the regularised arm there is no regularised source to train
    no_regpre = curriculum.parse_args(["--seeds", "1", "--arms", "finetune"])
    names = [j.name for j in curriculum.build_jobs(no_regpre)]
    assert "source-regularised-seed1" not in names


def test_the_minatar_setting_pretrains_one_agent_on_four_asterix_variants(bench):
    pays = bench.pays
    args = pays.parse_args(["--setting", "minatar-asterix", "--seeds", "0", "--arms", "finetune"])
    source, *targets = pays.build_jobs(args)
    assert source.argv[source.argv.index("--tasks") + 1] == "family:minatar-variants:train:4"
    assert [j.info["target"] for j in targets] == [
        "minatar-variants-h0", "minatar-variants-h0", "minatar-variants-h1", "minatar-variants-h1"
    ]  # fmt: skip
    assert pays.layout(args).results_dir == Path(
        "benchmarks/results/transfer_pays_minatar-asterix_runs"
    )
    assert pays.task_name("MiniGrid-DoorKey-8x8-v0") == "MiniGrid-DoorKey-8x8"


def test_report_rows_follow_the_arm_a_job_named_else_the_mode(bench):
    common = bench.common

    def result(mode, arm=None):
        return {"kind": "target", "target": "T", "seed": 0, "mode": mode,
                **({"arm": arm} if arm else {})}  # fmt: skip

    table = common.target_table([result("finetune", "finetune-l2init"), result("scratch")])
    assert set(table) == {("T", "finetune-l2init"), ("T", "scratch")}
