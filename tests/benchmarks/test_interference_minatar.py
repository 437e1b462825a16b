"""The interference screening: its runs and their order, each variant's child, the refusal of
another config's run, and the report's numbers (hand-computed) from hand-written run folders."""

from __future__ import annotations

import json

import pytest
from conftest import load_benchmarks

from multiq.runio.config_file import save_config
from multiq.runio.layout import CSV_HEADER

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
TRAINING, EVAL = "rollout/{}/ep_return", "task/{}/return"


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(runs="paper_runs", bench="interference_minatar").bench


def write_rows(folder, rows, wall_time_s=1.0):
    """Appends (step, key, value) rows to the run's metrics.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.csv"
    lines = [] if path.exists() else [",".join(CSV_HEADER)]
    lines += [f"{step},{wall_time_s},{key},{value}" for step, key, value in rows]
    with open(path, "a") as handle:
        handle.write("\n".join(lines) + "\n")


def write_games(folder, key, step, values, wall_time_s=1.0):
    """One row per game at `step`: values = game -> value (a number: every game)."""
    values = values if isinstance(values, dict) else dict.fromkeys(GAMES, values)
    write_rows(folder, [(step, key.format(g), values[g]) for g in GAMES], wall_time_s)


def finish(folder, steps, wall_time_s=3600.0):
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"tasks": {}, "env_steps_per_task": steps, "wall_time_s": wall_time_s}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "model.pt").write_bytes(b"")


def roots(tmp_path) -> list[str]:
    return ["--run-root", str(tmp_path / "runs"), "--results-root", str(tmp_path / "results"),
            "--recorded-root", str(tmp_path / "recorded")]  # fmt: skip


def test_the_screen_runs_the_likeliest_remedies_first_and_reads_independent(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    assert args.steps_per_game == 500_000 and args.async_updates == "false" and args.workers == 2
    assert bench.runs(args) == [("shared-2x", 0), ("pcgrad", 0), ("popart", 0), ("routed", 0),
                                ("shared", 0)]  # fmt: skip
    confirm = bench.parse_args([*roots(tmp_path), "--stage", "confirm", "--variants", "popart",
                                "pcgrad", "--independent-seeds", "0", "1"])  # fmt: skip
    assert confirm.steps_per_game == 1_000_000 and confirm.seeds == [0, 1]
    assert bench.runs(confirm) == [("popart", 0), ("pcgrad", 0), ("popart", 1), ("pcgrad", 1),
                                   ("independent", 1)]  # fmt: skip
    with pytest.raises(SystemExit):
        bench.parse_args(["--stage", "confirm"])  # which variants to confirm is not guessed


def test_runs_live_under_runs_and_what_the_report_reads_in_the_repository(bench):
    args = bench.parse_args([])
    assert args.run_root.parts[-2:] == ("runs", "interference_minatar")
    assert args.results_root.parts[-3:] == ("benchmarks", "results", "interference_minatar_runs")
    assert args.recorded_root.parts[-3:] == ("benchmarks", "results", "minatar_paper_runs")
    assert bench.run_dir(args, "shared-2x", 0).name == "shared-2x-500000-seed0"


@pytest.mark.parametrize("variant", ["shared", "shared-2x", "popart", "routed", "pcgrad"])
def test_each_variants_overrides_reach_its_child(bench, tmp_path, variant):
    args = bench.parse_args(roots(tmp_path))
    argv = bench.command(args, variant, 0)
    sets = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
    # epsilon decays over the paper's 100k env steps: a fifth of the 500k budget
    assert sets == ["progress_bar=false", "tensorboard=false", "exploration_fraction=0.2",
                    *bench.VARIANTS[variant]]  # fmt: skip
    assert argv[argv.index("--run-dir") + 1] == str(tmp_path / "runs" / f"{variant}-500000-seed0")
    assert argv[argv.index("--steps") + 1] == "500000"
    assert argv[argv.index("--async-updates") + 1] == "false"
    assert bench.expected_config(args, variant, 0).exploration_fraction == 0.2


def test_the_variants_are_the_issues_overrides(bench):
    assert bench.VARIANTS["shared-2x"] == ("conv_filters=32", "hidden_size=256")
    assert bench.VARIANTS["popart"] == ("popart=true",)
    assert bench.VARIANTS["routed"] == ("scheme=routed",)
    assert bench.VARIANTS["pcgrad"] == ("balancer=pcgrad",)
    assert bench.VARIANTS["shared"] == ()


def test_a_finished_run_of_another_config_is_refused_and_its_own_kept(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    result = bench.result_dir(args, "pcgrad", 0)
    result.mkdir(parents=True)
    save_config(bench.expected_config(args, "popart", 0), result / "config.yaml")
    finish(result, 500_000)
    with pytest.raises(SystemExit, match=r"finished run of another config .*balancer"):
        bench.command(args, "pcgrad", 0)
    save_config(bench.expected_config(args, "pcgrad", 0), result / "config.yaml")
    assert bench.command(args, "pcgrad", 0) is None  # finished: a record, kept
    finish(result, 400_000)  # finished at another budget: not trained further
    with pytest.raises(SystemExit, match="finished at 400000 env steps per game"):
        bench.command(args, "pcgrad", 0)


def test_a_default_that_changed_since_a_run_started_is_no_other_config(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    folder = bench.run_dir(args, "shared-2x", 0)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"")
    held = bench.expected_config(args, "shared-2x", 0)
    save_config(held.replace(meta_lr=0.05), folder / "config.yaml")  # an older default
    assert "--resume" in bench.command(args, "shared-2x", 0)
    wide = bench.run_dir(args, "shared", 0)  # shared's config leaves shared-2x's keys default
    wide.mkdir(parents=True)
    save_config(held, wide / "config.yaml")
    with pytest.raises(SystemExit, match="conv_filters: 32, this run's 16"):
        bench.command(args, "shared", 0)


def test_a_checkpoint_of_another_config_is_not_resumed(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    folder = bench.run_dir(args, "routed", 0)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"")
    save_config(bench.expected_config(args, "routed", 1), folder / "config.yaml")
    with pytest.raises(SystemExit, match="seed: 1, this run's 0"):
        bench.command(args, "routed", 0)
    save_config(bench.expected_config(args, "routed", 0), folder / "config.yaml")
    argv = bench.command(args, "routed", 0)
    assert argv[argv.index("--resume") + 1] == str(folder)


def test_a_run_folder_finished_but_not_copied_is_published_not_run(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    folder = bench.run_dir(args, "shared", 0)
    folder.mkdir(parents=True)
    save_config(bench.expected_config(args, "shared", 0), folder / "config.yaml")
    finish(folder, 500_000)
    assert bench.command(args, "shared", 0) is None
    assert (bench.result_dir(args, "shared", 0) / "summary.json").is_file()


def test_run_all_starts_the_children_in_the_screens_order(bench, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(bench, "run_jobs", lambda jobs, workers, hours: started.extend(jobs))
    bench.run_all(bench.parse_args(roots(tmp_path)))
    assert [job.label for job in started] == [
        "shared-2x seed 0",
        "pcgrad seed 0",
        "popart seed 0",
        "routed seed 0",
        "shared seed 0",
    ]
    assert started[0].result == tmp_path / "results" / "shared-2x-500000-seed0"


INDEPENDENT = {  # the recorded 1M run: training returns at 460k and 500k (mean: the measure)
    "training": ({"Asterix": 4, "Breakout": 8, "Freeway": 40, "Seaquest": 1, "SpaceInvaders": 30},
                 {"Asterix": 6, "Breakout": 8, "Freeway": 40, "Seaquest": 1, "SpaceInvaders": 30}),
    "eval": {"Asterix": 5, "Breakout": 10, "Freeway": 45, "Seaquest": 1, "SpaceInvaders": 40},
}  # fmt: skip
SHARED = [  # the recorded plain shared seeds 0, 1, 2 at 500k (training and eval alike)
    {"Asterix": a, "Breakout": b, "Freeway": 50, "Seaquest": 1, "SpaceInvaders": s}
    for a, b, s in ((1, 7, 20), (2, 8, 22), (3, 9, 24))
]
PCGRAD = {
    "training": {"Asterix": 4, "Breakout": 7, "Freeway": 50, "Seaquest": 1, "SpaceInvaders": 28},
    "eval": {"Asterix": 2, "Breakout": 6, "Freeway": 50, "Seaquest": 1, "SpaceInvaders": 40},
}


def write_runs(tmp_path):
    """The recorded runs (1M: what lies past 500k must not count), a finished `pcgrad` copy
    and a `popart` still going in its run folder."""
    recorded = tmp_path / "recorded"
    independent = recorded / "independent-seed0"
    write_games(independent, TRAINING, 440_000, 100)  # before the last 50k
    write_games(independent, TRAINING, 460_000, INDEPENDENT["training"][0], 3600)
    write_games(independent, EVAL, 500_000, INDEPENDENT["eval"], 7200)
    write_games(independent, TRAINING, 500_000, INDEPENDENT["training"][1], 7200)
    write_games(independent, TRAINING, 520_000, 1000, 7300)
    write_games(independent, EVAL, 1_000_000, 999, 14_400)
    finish(independent, 1_000_000, 14_400)
    for seed, values in enumerate(SHARED):
        write_games(recorded / f"shared-seed{seed}", TRAINING, 500_000, values)
        write_games(recorded / f"shared-seed{seed}", EVAL, 500_000, values)
        write_games(recorded / f"shared-seed{seed}", EVAL, 1_000_000, 777)
    pcgrad = tmp_path / "results" / "pcgrad-500000-seed0"
    write_games(pcgrad, TRAINING, 500_000, PCGRAD["training"])
    write_games(pcgrad, EVAL, 500_000, PCGRAD["eval"])
    cos = "mtl/grad_cos/{}/{}"
    write_rows(pcgrad, [(100_000, cos.format("Asterix", "Breakout"), -0.2),
                        (200_000, cos.format("Asterix", "Breakout"), -0.4),
                        (200_000, cos.format("Breakout", "SpaceInvaders"), 0.1),
                        (200_000, cos.format("Freeway", "Seaquest"), 0.5)])  # fmt: skip
    finish(pcgrad, 500_000, wall_time_s=9000)
    popart = tmp_path / "runs" / "popart-500000-seed0"
    write_games(popart, TRAINING, 260_000, 2.0, 1800)
    write_games(popart, EVAL, 250_000, 3.0, 1800)
    write_games(popart, TRAINING, 300_000, 4.0, 5400)


def test_the_report_gives_each_line_against_independent(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "count_parameters", lambda folder: 1234)
    write_runs(tmp_path)
    args = bench.parse_args([*roots(tmp_path), "--variants", "pcgrad", "popart"])
    text = bench.report(args)
    training, evaluation = text.split("## evaluation return")
    # training: independent (4 + 6) / 2 = 5 on Asterix; the values past 500k do not count
    assert "| independent, seed 0 | 5.00 | 8.00 | 40.00 | 1.00 | 30.00 |  |" in training
    assert ("| shared (recorded), seeds 0, 1, 2 | 2.00 [1.00, 3.00] (-3.00) | 8.00 [7.00, 9.00] "
            "(+0.00) | 50.00 [50.00, 50.00] (+10.00) | 1.00 [1.00, 1.00] (+0.00) | "
            "22.00 [20.00, 24.00] (-8.00) |  |") in training  # fmt: skip
    # the gap: Asterix (4 - 2) / (5 - 2), SpaceInvaders (28 - 22) / (30 - 22); Breakout 7 is
    # the lowest shared run's, not below it
    assert (
        "| pcgrad, seed 0 | 4.00 (-1.00) | 7.00 (-1.00) | 50.00 (+10.00) | 1.00 (+0.00) | "
        "28.00 (-2.00) | yes: gap closed Asterix 67%, SpaceInvaders 75%; keeps |"
    ) in training
    assert (
        "| popart, seed 0, going: 300,000 of 500,000 | 3.00 (-2.00) | 3.00 (-5.00) | "
        "3.00 (-37.00) | 3.00 (+2.00) | 3.00 (-27.00) | going: no verdict before the budget |"
    ) in training  # a run short of its budget is no answer yet
    assert "| independent, seed 0 | 5.00 | 10.00 | 45.00 | 1.00 | 40.00 |  |" in evaluation
    assert ("| pcgrad, seed 0 | 2.00 (-3.00) | 6.00 (-4.00) | 50.00 (+5.00) | 1.00 (+0.00) | "
            "40.00 (+0.00) | no: gap closed Asterix 0%, SpaceInvaders 100%; loses Breakout |"
            ) in evaluation  # fmt: skip
    # wall time: summary.json's, or the latest logged up to the budget; the lowest pair's mean
    # cosine (-0.2 - 0.4) / 2 and the mean over the three pairs (-0.3 + 0.1 + 0.5) / 3
    assert "| independent seed 0 | 500,000 | 2.00 | 1,234 | - | - | - |" in text
    assert (
        "| pcgrad seed 0 | 500,000 | 2.50 | 1,234 | Asterix/Breakout -0.300 | +0.100 | - |" in text
    )
    assert "| popart seed 0 | 300,000 (going) | 1.50 | 1,234 | - | - | - |" in text


def test_the_recorded_independent_run_is_read_up_to_the_budget_not_its_end(bench, tmp_path):
    write_runs(tmp_path)
    reading = bench.read_run(tmp_path / "recorded" / "independent-seed0", 0, 500_000)
    assert reading.step == 500_000 and reading.done
    assert reading.measures["eval"] == INDEPENDENT["eval"]
    assert reading.measures["training"]["Asterix"] == 5.0  # not 1000 (520k) nor 999 (1M)
    assert reading.wall_time_s == 7200.0  # not the 1M run's 14,400


def test_conflict_pairs_split_keys_against_the_task_names(bench, tmp_path):
    names = ("a-1", "b/c.d")
    write_rows(tmp_path, [(10, f"task/{n}/return", 0.0) for n in names])
    write_rows(tmp_path, [(10, "mtl/grad_cos/b/c.d/a-1", -0.5), (20, "mtl/grad_cos/b/c.d/a-1", 0.1),
                          (30, "mtl/grad_cos/b/c.d/a-1", -1.0)])  # fmt: skip
    assert bench.conflict_pairs(tmp_path, budget=20) == {("b/c.d", "a-1"): pytest.approx(-0.2)}
    assert bench.conflict_cell({}) == ("-", "-")


def test_the_parameters_follow_the_runs_config(bench, tmp_path):
    args = bench.parse_args(roots(tmp_path))
    counts = {}
    for variant in ("shared", "shared-2x"):
        (tmp_path / variant).mkdir()
        save_config(bench.expected_config(args, variant, 0), tmp_path / variant / "config.yaml")
        counts[variant] = bench.count_parameters(tmp_path / variant)
    assert counts["shared-2x"] > 2 * counts["shared"] > 0
    assert bench.count_parameters(tmp_path / "none") is None


TINY = ("eval_episodes=1", "learning_starts=100", "buffer_size=1000", "eval_freq=0",
        "log_interval=100", "interference_freq=20", "checkpoint_freq=0")  # fmt: skip


def test_a_tiny_screen_trains_publishes_and_reports(bench, tmp_path, monkeypatch):
    monkeypatch.setitem(bench.VARIANTS, "pcgrad", (*bench.VARIANTS["pcgrad"], *TINY))
    out = tmp_path / "out"
    argv = [*roots(tmp_path), "--variants", "pcgrad", "--steps-per-game", "300",
            "--out-dir", str(out)]  # fmt: skip
    bench.main(argv)
    result = tmp_path / "results" / "pcgrad-300-seed0"
    assert json.loads((result / "summary.json").read_text())["env_steps_per_task"] == 300
    config = (result / "config.yaml").read_text()
    assert "balancer: pcgrad" in config and "exploration_fraction: 1.0" in config
    text = (out / "interference_minatar.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| pcgrad seed 0 |"))
    assert row.split(" | ")[1] == "300" and "/" in row.split(" | ")[4]  # a conflict pair
    assert bench.command(bench.parse_args(argv), "pcgrad", 0) is None  # finished: kept
