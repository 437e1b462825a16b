"""The transfer-exploration benchmark: its jobs, returns at k and the verdict on hand-built
numbers (an end-to-end smoke run takes minutes: run the script with tiny budgets by hand)."""

from pathlib import Path

import pytest
from conftest import load_benchmarks


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(tx="transfer_exploration")


def test_every_arm_fine_tunes_the_same_target_from_the_meta_benchmarks_multitask_agent(bench):
    tx = bench.tx
    args = tx.parse_args(["--seeds", "2", "--n-held-out", "1", "--ks", "0", "500", "1500"])
    layout = bench.common.Layout(Path("r"), Path("o"))
    pretrain, *targets = tx.all_jobs(args, layout)
    assert pretrain.name == "multitask-seed2" and "family:cartpole-physics:train:8" in pretrain.argv
    assert [j.info["arm"] for j in targets] == ["today", "eps", "prefill", "both", "scratch"]
    assert {j.after for j in targets} == {"multitask-seed2"}
    for job in targets:
        argv = job.argv
        assert argv[argv.index("--tasks") + 1] == "family:cartpole-physics:held-out@0"
        assert argv[argv.index("--steps") + 1] == "1500" and "eval_freq=500" in argv
    sets = {j.info["arm"]: {a for a in j.argv if a.startswith("transfer_")} for j in targets}
    assert sets == {
        "today": set(),
        "eps": {"transfer_initial_eps=0.1"},
        "prefill": {"transfer_prefill_steps=1000"},
        "both": {"transfer_initial_eps=0.1", "transfer_prefill_steps=1000"},
        "scratch": set(),
    }
    assert [j.argv[j.argv.index("--mode") + 1] for j in targets][-2:] == ["finetune", "scratch"]


def test_returns_at_k_paired_dips_and_the_verdict_on_hand_built_numbers(bench):
    tx = bench.tx
    assert tx.return_at([[0, 5.0], [1000, 7.0], [2000, 9.0]], 1000) == 7.0
    assert tx.return_at([[0, 5.0], [1250, 8.0]], 1000) == 8.0  # the first evaluation after k

    def result(arm, target, values):
        curve = [[k, v] for k, v in zip((0, 1000), values, strict=True)]
        return {"kind": "target", "arm": arm, "target": target, "seed": 0,
                "target_tasks": ["T"], "curves": {"T": curve}}  # fmt: skip

    results = [
        result("today", "t0", [100.0, 20.0]), result("today", "t1", [90.0, 30.0]),
        result("eps", "t0", [100.0, 95.0]), result("eps", "t1", [90.0, 80.0]),
    ]  # fmt: skip
    table = tx.returns_table(results, [0, 1000])
    assert table["today"][1000] == {("t0", 0): 20.0, ("t1", 0): 30.0}
    assert tx.paired(table, "eps", "today", 1000) == (62.5, 50.0, 75.0)  # +75 and +50
    assert tx.paired(table, "today", "today", 1000, base_k=0)[0] == -70.0  # the dip
    (line,) = tx.verdict(table, [0, 1000])
    assert line == "- eps against today: k = 1000: ahead (+62.5 [50.0, 75.0])"


def test_a_single_pair_gets_no_verdict(bench):
    tx = bench.tx
    table = {"today": {1000: {("t0", 0): 20.0}}, "eps": {1000: {("t0", 0): 95.0}}}
    (line,) = tx.verdict(table, [0, 1000])
    assert line == (
        "- eps against today: k = 1000: fewer than 2 (task, seed) pairs, no interval: no verdict"
    )
