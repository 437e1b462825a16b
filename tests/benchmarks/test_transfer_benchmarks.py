"""The transfer benchmarks: job planning, resume decisions, child commands, report maths, files.

No training: run folders are faked on disk, the child process is replaced, and the report is
built from hand-written result JSONs whose metrics are computed by hand below.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import load_benchmarks

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
OLD_MINATAR_MODES = ["scratch", "finetune", "freeze", "joint", "distill"]
NEW_ARMS = ["progressive", "finetune-regpre", "finetune-l2init"]
SETTINGS = {"train_freq": 4, "eval_freq": 5000, "eval_episodes": 10}


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(minatar="transfer_minatar", atari="transfer_atari")


def test_loading_registers_nothing_permanently(bench):
    assert bench.atari.common is bench.common and bench.minatar.common is bench.common
    assert not {"transfer_common", "transfer_minatar", "transfer_atari"} & set(sys.modules)
    assert str(BENCH_DIR) not in sys.path


# --- fakes ----------------------------------------------------------------------------------------


def minatar_args(bench, tmp_path, *extra):
    return bench.minatar.parse_args(
        ["--run-root", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), *extra]
    )


def touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_run_folder(run_dir, curves, random, transfer=None):
    """A finished run folder: metrics.csv (curves, random returns at step 0), summary.json."""
    rows = [f"{s},0.0,task/{t}/return,{v}" for t, c in curves.items() for s, v in c]
    rows += [f"0,0.0,task/{t}/random_return,{v}" for t, v in random.items()]
    touch(run_dir / "metrics.csv", "step,wall_time_s,key,value\n" + "\n".join(rows) + "\n")
    tasks = {
        t: {"return_mean": c[-1][1], "random_return_mean": random[t]} for t, c in curves.items()
    }
    summary = {"tasks": tasks, "wall_time_s": 50.0, "env_steps_per_s": 400.0}
    summary["env_steps_per_task"] = max(c[-1][0] for c in curves.values())
    if transfer is not None:
        summary["transfer"] = transfer
    touch(run_dir / "summary.json", json.dumps(summary))
    touch(run_dir / "model.pt")


def result(target, mode, seed, curve, sources=None, random=0.0, steps=10_000):
    """A target run's result JSON as the benchmark writes it."""
    sources = sources or {}
    return {
        "name": f"{target}-{mode}-seed{seed}",
        "kind": "target",
        "target": target,
        "mode": mode,
        "seed": seed,
        "pretrain_steps": 100_000,
        "target_steps": steps,
        "settings": SETTINGS,
        "source": f"runs/pretrain-without-{target}-seed{seed}",
        "source_tasks": [] if mode == "scratch" else ["Asterix", "Seaquest"],
        "target_tasks": [target],
        "curves": {target: curve, **({} if mode == "scratch" else sources)},
        "random_returns": {target: random, "Asterix": 0.5, "Seaquest": 0.0},
        "wall_time_s": 100.0 + seed,
        "env_steps_per_s": 1000.0,
        "machine": {"platform": "Linux-x", "cpus": 2, "python": "3.11", "torch": "2.13.0"},
        "invocation": "python benchmarks/transfer_minatar.py",
        "load_average_1min_at_start": 1.5,
    }


def pretrain_result(target, seed):
    return {
        "name": f"pretrain-without-{target}-seed{seed}",
        "kind": "pretrain",
        "target": target,
        "seed": seed,
        "tasks": ["Asterix", "Seaquest"],
        "pretrain_steps": 100_000,
        "settings": {"scheme": "shared", **SETTINGS, "eval_freq": 0},
        "curves": {"Asterix": [[100_000, 6.0]], "Seaquest": [[100_000, 3.0]]},
        "random_returns": {"Asterix": 0.5, "Seaquest": 0.0},
        "wall_time_s": 900.0,
        "env_steps_per_s": 500.0,
        "machine": {"platform": "Linux-x", "cpus": 2, "python": "3.11", "torch": "2.13.0"},
        "invocation": "python benchmarks/transfer_minatar.py",
    }


SCRATCH = [[0, 0.0], [5000, 5.0], [10_000, 10.0]]  # area above random 0: 50,000


def scaled(ratio):
    """A curve whose area is `ratio` x scratch's."""
    return [[s, ratio * v] for s, v in SCRATCH]


def finetune_curve(seed):
    """First return 4 + seed, then 10, 10: area 5000 (14 + seed) / 2 + 50,000."""
    return [[0, 4.0 + seed], [5000, 10.0], [10_000, 10.0]]


FORGETTING = {
    "Asterix": [[0, 6.0], [5000, 4.0], [10_000, 2.0]],
    "Seaquest": [[0, 3.0], [10_000, 3.0]],
}


def hand_results():
    """Breakout: scratch, finetune (ratios 1.7, 1.75, 1.8), freeze (0.4), joint (0.8, 1, 1.2);
    Freeway: scratch and finetune equal to it (ratio 1)."""
    results = []
    for seed in (0, 1, 2):
        results += [
            result("Breakout", "scratch", seed, SCRATCH),
            result("Breakout", "finetune", seed, finetune_curve(seed), FORGETTING),
            result("Breakout", "freeze", seed, [[0, 0.0], [5000, 2.0], [10_000, 4.0]], FORGETTING),
            result("Breakout", "joint", seed, scaled(0.8 + 0.2 * seed), FORGETTING),
            result("Freeway", "scratch", seed, SCRATCH),
            result("Freeway", "finetune", seed, SCRATCH, FORGETTING),
            pretrain_result("Breakout", seed),
            pretrain_result("Freeway", seed),
        ]
    return results


# --- jobs and commands ----------------------------------------------------------------------------


def test_minatar_jobs_pretrain_on_the_other_games_then_every_mode(bench, tmp_path):
    args = minatar_args(bench, tmp_path, "--held-out", "Breakout", "Seaquest", "--seeds", "0", "1")
    jobs = bench.minatar.build_jobs(args)
    names = [job.name for job in jobs]
    assert names[:8] == [
        "pretrain-without-Breakout-seed0",
        "pretrain-without-Seaquest-seed0",
        "pretrain-without-Breakout-seed1",
        "pretrain-without-Seaquest-seed1",
        "pretrain-regularised-without-Breakout-seed0",
        "pretrain-regularised-without-Seaquest-seed0",
        "pretrain-regularised-without-Breakout-seed1",
        "pretrain-regularised-without-Seaquest-seed1",
    ]
    assert names[8:16] == [f"Breakout-{m}-seed0" for m in [*OLD_MINATAR_MODES, *NEW_ARMS]]
    assert list(bench.minatar.ARMS) == [*OLD_MINATAR_MODES, *NEW_ARMS]
    assert len(jobs) == 8 + 2 * 2 * 8
    assert {job.after for job in jobs if job.name.startswith("Seaquest-")} == {
        "pretrain-without-Seaquest-seed0",
        "pretrain-without-Seaquest-seed1",
        "pretrain-regularised-without-Seaquest-seed0",
        "pretrain-regularised-without-Seaquest-seed1",
    }
    assert jobs[0].info["tasks"] == ["Asterix", "Freeway", "Seaquest", "SpaceInvaders"]


def test_scratch_is_always_run(bench, tmp_path):
    args = minatar_args(bench, tmp_path, "--modes", "joint", "finetune")
    assert bench.minatar.modes(args) == ["scratch", "finetune", "joint"]
    args = minatar_args(bench, tmp_path, "--arms", "finetune-l2init", "progressive")
    assert bench.minatar.modes(args) == ["scratch", "progressive", "finetune-l2init"]


def test_the_regularised_source_is_trained_only_for_the_regpre_arm(bench, tmp_path):
    for argv, sources in (
        (["--modes", *OLD_MINATAR_MODES, "progressive", "finetune-l2init"], ["pretrain"]),
        (["--arms", "finetune-regpre"], ["pretrain", "pretrain-regularised"]),
    ):
        args = minatar_args(bench, tmp_path, "--held-out", "Freeway", "--seeds", "2", *argv)
        jobs = bench.minatar.build_jobs(args)
        assert [j.name for j in jobs if j.kind == "pretrain"] == [
            f"{prefix}-without-Freeway-seed2" for prefix in sources
        ]


def test_minatar_child_commands_exact(bench, tmp_path):
    args = bench.minatar.parse_args(["--seeds", "1"])
    pretrain = bench.minatar.pretrain_job("Breakout", 1, args)
    sets = ["--set", "eval_episodes=10", "--set", "device=cpu"]
    sets += ["--set", "tensorboard=false", "--set", "progress_bar=false"]
    assert bench.common.child_command(pretrain.argv) == [
        *bench.common.MULTIQ,
        "train",
        "--tasks",
        "minatar:Asterix,minatar:Freeway,minatar:Seaquest,minatar:SpaceInvaders",
        "--steps",
        "100000",
        "--seed",
        "1",
        "--run-dir",
        "runs/transfer_minatar/pretrain-without-Breakout-seed1",
        "--set",
        "scheme=shared",
        "--set",
        "train_freq=4",
        "--set",
        "eval_freq=0",
        *sets,
    ]
    target = bench.minatar.target_job("Breakout", "freeze", 1, args)
    assert list(target.argv) == [
        "transfer",
        "benchmarks/results/transfer_minatar_runs/pretrain-without-Breakout-seed1.model.pt",
        "--tasks",
        "minatar:Breakout",
        "--mode",
        "freeze",
        "--steps",
        "100000",
        "--seed",
        "1",
        "--run-dir",
        "runs/transfer_minatar/Breakout-freeze-seed1",
        "--set",
        "train_freq=4",
        "--set",
        "eval_freq=10000",
        *sets,
    ]
    assert bench.common.child_command(bench.common.resume_argv(Path("r/x"))) == [
        *bench.common.MULTIQ,
        "train",
        "--resume",
        "r/x",
    ]
    assert bench.common.MULTIQ[-1].endswith("multiq")


MINATAR_SETS = [
    "--set", "train_freq=4", "--set", "eval_freq=10000", "--set", "eval_episodes=10",
    "--set", "device=cpu", "--set", "tensorboard=false", "--set", "progress_bar=false",
]  # fmt: skip


def minatar_target_argv(arm, mode, source, *extra):
    """A transfer_minatar target's argv for Breakout, seed 1, default budgets (a literal)."""
    return [
        "transfer", f"benchmarks/results/transfer_minatar_runs/{source}.model.pt",
        "--tasks", "minatar:Breakout", "--mode", mode, "--steps", "100000", "--seed", "1",
        "--run-dir", f"runs/transfer_minatar/Breakout-{arm}-seed1", *MINATAR_SETS, *extra,
    ]  # fmt: skip


def test_minatar_old_jobs_keep_their_names_and_command_lines(bench):
    # the recorded runs (benchmarks/results/transfer_minatar_runs) are skipped by name, and a
    # run of an old mode started afresh must be the run that was recorded
    minatar = bench.minatar
    jobs = {job.name: job for job in minatar.build_jobs(minatar.parse_args(["--seeds", "1"]))}
    plain = "pretrain-without-Breakout-seed1"
    for mode in OLD_MINATAR_MODES:
        job = jobs[f"Breakout-{mode}-seed1"]
        assert list(job.argv) == minatar_target_argv(mode, mode, plain)
        assert job.after == plain and "arm" not in job.info and job.info["mode"] == mode
    assert "source_kind" not in jobs[plain].info
    assert jobs[plain].argv[-14:-12] == ("--set", "scheme=shared")


def test_minatar_new_arms_learn_from_the_right_source_with_their_own_keys(bench):
    minatar, common = bench.minatar, bench.common
    jobs = {job.name: job for job in minatar.build_jobs(minatar.parse_args(["--seeds", "1"]))}
    plain, regularised = (
        "pretrain-without-Breakout-seed1",
        "pretrain-regularised-without-Breakout-seed1",
    )
    source = jobs[regularised]
    assert list(source.argv) == [
        *jobs[plain].argv[:8], "runs/transfer_minatar/" + regularised, *jobs[plain].argv[9:],
        "--set", "weight_decay=0.1", "--set", "dropout=0.1",
    ]  # fmt: skip
    assert source.kind == "pretrain" and source.info["source_kind"] == "regularised"
    assert source.info["settings"]["dropout"] == 0.1
    expected = {
        "progressive": (minatar_target_argv("progressive", "progressive", plain), plain),
        "finetune-regpre": (
            minatar_target_argv("finetune-regpre", "finetune", regularised,
                                "--set", "head_init=fresh", "--set", "weight_decay=0.0",
                                "--set", "dropout=0.0"),
            regularised,
        ),
        "finetune-l2init": (
            minatar_target_argv("finetune-l2init", "finetune", plain,
                                "--set", "head_init=fresh", "--set", "l2_init=0.01"),
            plain,
        ),
    }  # fmt: skip
    for arm, (argv, after) in expected.items():
        job = jobs[f"Breakout-{arm}-seed1"]
        assert (list(job.argv), job.after) == (argv, after), arm
        # the report's row: the arm, not the mode
        assert common.arm(job.info) == arm
        assert job.info["pretrain"] == after


def test_recorded_runs_of_the_old_modes_are_skipped(bench, tmp_path):
    recorded = BENCH_DIR / "results"
    for module, argv in (
        (bench.minatar, []),
        (bench.atari, ["--targets", "atari:Pacman", "atari:MsPacman"]),
    ):
        runs = recorded / f"{module.BENCH}_runs"
        if not runs.is_dir():
            pytest.skip(f"no recorded runs in {runs}")
        args = module.parse_args([*argv, "--out-dir", str(recorded),
                                  "--run-root", str(tmp_path / "runs")])  # fmt: skip
        actions = {job.name: action for job, action in bench.common.plan(
            module.build_jobs(args), module.layout(args))}  # fmt: skip
        names = {path.stem for path in runs.glob("*.json")}
        assert names and all(actions[name] == "skip" for name in names)
        new = [name for name in actions if any(arm in name for arm in NEW_ARMS)]
        assert new and not any(actions[name] == "skip" for name in new)


def test_atari_child_commands_exact(bench):
    args = bench.atari.parse_args(
        ["--targets", "atari:Pacman", "atari:MsPacman", "--n-envs", "8", "--device", "cuda",
         "--modes", "scratch", "finetune", "joint"]
    )  # fmt: skip
    jobs = bench.atari.build_jobs(args)
    assert [job.name for job in jobs] == [
        "pretrain-Tetris-seed0",
        "Pacman-scratch-seed0",
        "Pacman-finetune-seed0",
        "Pacman-joint-seed0",
        "MsPacman-scratch-seed0",
        "MsPacman-finetune-seed0",
        "MsPacman-joint-seed0",
    ]
    keys = [
        "dueling=true",
        "learning_rate=0.0001",
        "buffer_size=50000",
        "learning_starts=5000",
        "target_update_interval=2000",
        "n_step=3",
        "save_replay=false",
        "n_envs=8",
        "device=cuda",
        "train_freq=4",
    ]
    tail = ["eval_episodes=5", "tensorboard=false", "progress_bar=false"]

    def sets(eval_freq):
        return [item for key in [*keys, f"eval_freq={eval_freq}", *tail] for item in ("--set", key)]

    assert list(jobs[0].argv) == [
        "train",
        "--tasks",
        "atari:Tetris",
        "--steps",
        "50000",
        "--seed",
        "0",
        "--run-dir",
        "runs/transfer_atari/pretrain-Tetris-seed0",
        *sets(0),
    ]
    assert list(jobs[5].argv) == [
        "transfer",
        "benchmarks/results/transfer_atari_runs/pretrain-Tetris-seed0.model.pt",
        "--tasks",
        "atari:MsPacman",
        "--mode",
        "finetune",
        "--steps",
        "50000",
        "--seed",
        "0",
        "--run-dir",
        "runs/transfer_atari/MsPacman-finetune-seed0",
        *sets(10000),
    ]
    assert {job.after for job in jobs[1:]} == {"pretrain-Tetris-seed0"}
    assert jobs[5].info["target"] == "MsPacman"
    # the default runs the new arms too, the old jobs unchanged
    default = bench.atari.parse_args(
        ["--targets", "atari:Pacman", "atari:MsPacman", "--n-envs", "8", "--device", "cuda"]
    )
    every = {job.name: job for job in bench.atari.build_jobs(default)}
    assert all(every[job.name] == job for job in jobs)
    assert list(every)[:2] == ["pretrain-Tetris-seed0", "pretrain-regularised-Tetris-seed0"]
    regularised = every["pretrain-regularised-Tetris-seed0"]
    assert list(regularised.argv) == [
        *jobs[0].argv[:8], "runs/transfer_atari/pretrain-regularised-Tetris-seed0",
        *jobs[0].argv[9:], "--set", "weight_decay=0.1", "--set", "dropout=0.1",
    ]  # fmt: skip
    assert len(every) == 2 + 2 * 6
    for arm, mode, after, extra in (
        ("progressive", "progressive", "pretrain-Tetris-seed0", []),
        (
            "finetune-regpre",
            "finetune",
            "pretrain-regularised-Tetris-seed0",
            ["head_init=fresh", "weight_decay=0.0", "dropout=0.0"],
        ),
        (
            "finetune-l2init",
            "finetune",
            "pretrain-Tetris-seed0",
            ["head_init=fresh", "l2_init=0.01"],
        ),
    ):
        job = every[f"Pacman-{arm}-seed0"]
        assert job.after == after and bench.common.arm(job.info) == arm
        assert list(job.argv) == [
            "transfer", f"benchmarks/results/transfer_atari_runs/{after}.model.pt",
            "--tasks", "atari:Pacman", "--mode", mode, "--steps", "50000", "--seed", "0",
            "--run-dir", f"runs/transfer_atari/Pacman-{arm}-seed0", *sets(10000),
            *(item for key in extra for item in ("--set", key)),
        ]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "argv"),
    [("minatar", []), ("atari", ["--targets", "atari:Pacman", "atari:MsPacman"])],
)
def test_every_child_command_parses_with_the_cli_and_config(bench, script, argv):
    from multiq.cli import build_parser
    from multiq.config import Config

    module = getattr(bench, script)
    parser = build_parser()
    for job in module.build_jobs(module.parse_args(argv)):
        parsed = parser.parse_args(list(job.argv))
        assert parsed.command == ("train" if job.kind == "pretrain" else "transfer")
        Config().with_overrides(parsed.set)  # every --set key exists and is valid
    assert parser.parse_args(list(bench.common.resume_argv(Path("r")))).resume == "r"


def test_children_get_one_thread(bench):
    env = bench.common.child_env()
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"


# --- planning and resuming ------------------------------------------------------------------------


def test_plan_decides_from_the_folders_and_puts_pretraining_first(bench, tmp_path):
    args = minatar_args(bench, tmp_path, "--held-out", "Breakout", "--seeds", "0")
    layout, common = bench.minatar.layout(args), bench.common
    pre = "pretrain-without-Breakout-seed0"
    touch(layout.run_dir(pre) / "summary.json")
    touch(layout.run_dir(pre) / "model.pt")
    touch(layout.result_file(pre))
    touch(layout.model_file(pre))  # kept beside the JSON when the pretraining finished
    touch(layout.result_file("Breakout-scratch-seed0"))  # finished, its folder gone: skip
    touch(layout.run_dir("Breakout-finetune-seed0") / "checkpoint.pt")
    touch(layout.run_dir("Breakout-freeze-seed0") / "config.yaml")  # died before a checkpoint
    for name in ("summary.json", "model.pt", "checkpoint.pt"):
        touch(layout.run_dir("Breakout-joint-seed0") / name)  # finished, JSON not yet written
    planned = common.plan(list(reversed(bench.minatar.build_jobs(args))), layout)
    assert {planned[0][0].name, planned[1][0].name} == {pre, "pretrain-regularised-" + pre[9:]}
    assert {job.name: action for job, action in planned} == {
        pre: "skip",
        "pretrain-regularised-without-Breakout-seed0": "start",
        "Breakout-scratch-seed0": "skip",
        "Breakout-finetune-seed0": "resume",
        "Breakout-freeze-seed0": "restart",
        "Breakout-joint-seed0": "collect",
        "Breakout-distill-seed0": "start",
        "Breakout-progressive-seed0": "start",
        "Breakout-finetune-regpre-seed0": "start",
        "Breakout-finetune-l2init-seed0": "start",
    }


def test_targets_are_blocked_when_their_finished_pretraining_lost_its_model(bench, tmp_path):
    args = minatar_args(bench, tmp_path, "--held-out", "Freeway", "--seeds", "3")
    layout, common = bench.minatar.layout(args), bench.common
    touch(layout.result_file("pretrain-without-Freeway-seed3"))  # its kept model.pt was deleted
    touch(layout.result_file("Freeway-joint-seed3"))
    actions = {j.name: a for j, a in common.plan(bench.minatar.build_jobs(args), layout)}
    assert actions.pop("pretrain-without-Freeway-seed3") == "skip"
    assert actions.pop("Freeway-joint-seed3") == "skip"
    # the regularised source and its arm wait for a pretraining that has not run yet
    assert actions.pop("pretrain-regularised-without-Freeway-seed3") == "start"
    assert actions.pop("Freeway-finetune-regpre-seed3") == "start"
    assert set(actions.values()) == {"blocked"}


def test_plan_rejects_a_dependency_that_is_not_planned(bench, tmp_path):
    job = bench.common.Job("a", "target", (), after="missing")
    with pytest.raises(ValueError, match="missing"):
        bench.common.plan([job], bench.common.Layout(tmp_path, tmp_path))


def fake_jobs(common):
    pre = [common.Job(f"pre{i}", "pretrain", ()) for i in range(2)]
    targets = [
        common.Job(f"t{i}{m}", "target", (), after=f"pre{i}") for i in range(2) for m in "ab"
    ]
    return [(job, "start") for job in [*pre, *targets]]


def test_one_worker_runs_pretraining_first_and_skips_targets_of_a_failed_one(bench):
    started = []

    def execute(job, action):
        started.append(job.name)
        return job.name != "pre1"

    outcome = bench.common.run_jobs(fake_jobs(bench.common), 1, execute)
    assert started == ["pre0", "pre1", "t0a", "t0b"]
    assert outcome == {
        "pre0": True,
        "pre1": False,
        "t0a": True,
        "t0b": True,
        "t1a": False,
        "t1b": False,
    }


def test_workers_start_a_target_only_after_its_pretraining_finished(bench):
    events, lock = [], threading.Lock()

    def execute(job, action):
        with lock:
            events.append(("start", job.name))
        time.sleep(0.05 if job.name == "pre1" else 0.01)
        with lock:
            events.append(("end", job.name))
        return True

    planned = fake_jobs(bench.common)
    skipped = (bench.common.Job("pre9", "pretrain", ()), "skip")
    late = (bench.common.Job("t9", "target", (), after="pre9"), "resume")
    outcome = bench.common.run_jobs([skipped, *planned, late], 3, execute)
    assert all(outcome.values()) and len(outcome) == 8
    for job, _ in [*planned, late]:
        if job.after and job.after != "pre9":
            assert events.index(("end", job.after)) < events.index(("start", job.name))
    assert ("start", "pre9") not in events


# --- running one job and its result JSON ----------------------------------------------------------


def fake_child(bench, monkeypatch, tmp_path, exit_code=0):
    """Replaces the child process: records the command, writes a finished transfer run."""
    commands = []

    def run_logged(command, log):
        commands.append(command)
        run_dir = Path(
            command[-1] if "--resume" in command else command[command.index("--run-dir") + 1]
        )
        transfer = {
            "mode": "finetune",
            "source": str(tmp_path / "runs/pretrain-without-Breakout-seed0"),
            "source_tasks": ["Asterix"],
            "target_tasks": ["Breakout"],
        }
        curves = {"Breakout": [(0, 1.0), (5000, 3.0)], "Asterix": [(0, 6.0), (5000, 5.0)]}
        write_run_folder(run_dir, curves, {"Breakout": 0.5, "Asterix": 0.25}, transfer)
        return exit_code

    monkeypatch.setattr(bench.common, "run_logged", run_logged)
    return commands


def test_restart_deletes_the_stale_folder_runs_the_child_and_writes_the_json(
    bench, tmp_path, monkeypatch
):
    args = minatar_args(bench, tmp_path, "--held-out", "Breakout", "--seeds", "0")
    layout, common = bench.minatar.layout(args), bench.common
    job = bench.minatar.target_job("Breakout", "finetune", 0, args)
    touch(layout.run_dir(job.name) / "stale.txt")
    commands = fake_child(bench, monkeypatch, tmp_path)
    assert common.execute(job, "restart", layout)
    assert commands == [common.child_command(job.argv)]
    assert not (layout.run_dir(job.name) / "stale.txt").exists()
    saved = json.loads(layout.result_file(job.name).read_text())
    assert saved["mode"] == "finetune" and saved["seed"] == 0 and saved["target"] == "Breakout"
    assert saved["curves"] == {
        "Breakout": [[0, 1.0], [5000, 3.0]],
        "Asterix": [[0, 6.0], [5000, 5.0]],
    }
    assert saved["random_returns"] == {"Breakout": 0.5, "Asterix": 0.25}
    assert saved["source_tasks"] == ["Asterix"] and saved["target_tasks"] == ["Breakout"]
    assert saved["wall_time_s"] == 50.0 and saved["env_steps_per_s"] == 400.0
    assert saved["settings"] == bench.minatar.settings(args)
    assert saved["machine"]["cpus"] and "load_average_1min_at_start" in saved
    rebuilt = common.run_from_result(saved)
    read = common.read_transfer_run(layout.run_dir(job.name))
    assert (rebuilt.curves, rebuilt.random, rebuilt.mode) == (read.curves, read.random, read.mode)


def test_resume_runs_multiq_train_resume_and_a_failure_writes_no_json(bench, tmp_path, monkeypatch):
    args = minatar_args(bench, tmp_path, "--held-out", "Breakout", "--seeds", "0")
    layout, common = bench.minatar.layout(args), bench.common
    job = bench.minatar.target_job("Breakout", "finetune", 0, args)
    commands = fake_child(bench, monkeypatch, tmp_path, exit_code=130)
    assert not common.execute(job, "resume", layout)
    assert commands == [[*common.MULTIQ, "train", "--resume", str(layout.run_dir(job.name))]]
    assert not layout.result_file(job.name).exists()


def test_collect_only_reads_a_finished_pretraining_folder(bench, tmp_path, monkeypatch):
    args = minatar_args(bench, tmp_path, "--held-out", "Breakout", "--seeds", "0")
    layout, common = bench.minatar.layout(args), bench.common
    job = bench.minatar.pretrain_job("Breakout", 0, args)
    curves = {"Asterix": [(100_000, 6.0)], "Seaquest": [(100_000, 2.0)]}
    write_run_folder(layout.run_dir(job.name), curves, {"Asterix": 0.5, "Seaquest": 0.0})
    monkeypatch.setattr(common, "run_logged", lambda *a: pytest.fail("no child for collect"))
    assert common.execute(job, "collect", layout)
    saved = json.loads(layout.result_file(job.name).read_text())
    assert saved["kind"] == "pretrain" and saved["curves"]["Asterix"] == [[100_000, 6.0]]
    assert saved["final_returns"] == {"Asterix": 6.0, "Seaquest": 2.0}
    assert saved["random_returns"] == {"Asterix": 0.5, "Seaquest": 0.0}


# --- report maths ---------------------------------------------------------------------------------


def test_report_metrics_by_hand(bench):
    common = bench.common
    table = common.target_table(hand_results())
    summary = common.summarise(table, ["Breakout", "Freeway"], bench.minatar.MODES)
    assert set(summary["Breakout"]) == {"scratch", "finetune", "freeze", "joint"}
    scratch = summary["Breakout"]["scratch"]["target"]
    assert scratch["jumpstart"]["mean"] == 0 and scratch["transfer_ratio"]["mean"] == 1
    assert scratch["time_to_threshold_steps"]["mean"] == 10_000  # threshold 0.8 x 10 = 8
    fine = summary["Breakout"]["finetune"]
    assert fine["seeds"] == [0, 1, 2]
    assert fine["target"]["jumpstart"]["mean"] == pytest.approx(5.0)  # 4, 5, 6
    ratio = fine["target"]["transfer_ratio"]  # (85,000 + 2,500 seed) / 50,000
    assert ratio["mean"] == pytest.approx(1.75)
    assert 1.7 <= ratio["low"] < 1.75 < ratio["high"] <= 1.8
    assert fine["target"]["time_to_threshold_steps"]["mean"] == 5000
    assert fine["target"]["final_return"]["mean"] == 10.0
    asterix = fine["source"]["Asterix"]
    assert asterix["return_before"]["mean"] == 6 and asterix["return_after"]["mean"] == 2
    assert asterix["forgetting"]["mean"] == 4
    freeze = summary["Breakout"]["freeze"]["target"]  # area 5,000 + 15,000 = 20,000
    assert freeze["transfer_ratio"]["mean"] == pytest.approx(0.4)
    assert freeze["time_to_threshold_steps"]["reached"] == 0
    joint = summary["Breakout"]["joint"]["target"]["transfer_ratio"]  # 0.8, 1.0, 1.2
    assert joint["mean"] == pytest.approx(1.0) and joint["low"] < 1 < joint["high"]


def test_pooled_ratio_averages_targets_per_seed(bench):
    common = bench.common
    table = common.target_table(hand_results())
    seeds, (mean, low, high) = common.pooled_ratio(table, ["Breakout", "Freeway"], "finetune")
    assert seeds == [0, 1, 2]  # per seed (1.7 + 1) / 2, (1.75 + 1) / 2, (1.8 + 1) / 2
    assert mean == pytest.approx(1.375) and 1.35 <= low < mean < high <= 1.4
    seeds, _ = common.pooled_ratio(table, ["Breakout", "Freeway"], "freeze")
    assert seeds == []  # no freeze run on Freeway


@pytest.mark.parametrize(
    ("low", "high", "seeds", "phrase"),
    [
        (1.1, 1.3, 3, "positive transfer"),
        (0.2, 0.9, 3, "negative transfer"),
        (0.9, 1.2, 3, "no clear transfer"),
        (1.5, 1.5, 1, "one seed only"),
        (float("nan"), float("nan"), 3, "undetermined"),
    ],
)
def test_verdict_text(bench, low, high, seeds, phrase):
    assert phrase in bench.common.verdict_text(low, high, seeds)


def test_a_ratio_left_undefined_where_scratch_did_not_learn_says_so(bench):
    common = bench.common
    ratio = {"mean": 1.5, "low": 1.2, "high": 1.8, "n": 2, "undefined": 1}
    assert common.ratio_cell(ratio) == (
        "1.50 [1.20, 1.80] (1 seed undefined: scratch did not learn)"
    )
    assert common.ratio_cell({**ratio, "undefined": 0}) == "1.50 [1.20, 1.80]"
    nan = float("nan")
    text = common.verdict_text(nan, nan, 3, undefined=3)
    assert "scratch did not learn" in text and "area difference" in text
    # two seeds, one undefined: one defined ratio is no interval
    row = {"seeds": [0, 1], "target": {"transfer_ratio": {**ratio, "n": 1, "undefined": 1}}}
    expected = "a defined ratio in fewer than 2 seeds (1 undefined): no verdict"
    assert common.row_verdict(row) == expected


def test_the_verdict_reads_the_area_difference_where_scratch_mostly_did_not_learn(bench):
    ratio = {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 1, "undefined": 2}
    area = {"mean": 0.3, "low": 0.1, "high": 0.5, "n": 3}
    row = {"seeds": [0, 1, 2], "target": {"transfer_ratio": ratio, "area_difference": area}}
    assert bench.common.row_verdict(row) == (
        "positive transfer (area difference > 0); the ratio is undefined in 2 of 3 seeds "
        "(scratch did not learn)"
    )
    # two defined ratios: the ratio's interval decides, as before
    two = {**ratio, "n": 2, "undefined": 1, "low": 0.4, "high": 0.6}
    row = {"seeds": [0, 1, 2], "target": {"transfer_ratio": two, "area_difference": area}}
    assert bench.common.row_verdict(row) == "negative transfer"


def test_steps_to_threshold_cell_counts_seeds_without_a_threshold(bench):
    fmt = bench.common.fmt_steps
    stat = {"mean": 5000.0, "low": 4000.0, "high": 6000.0, "reached": 2, "seeds": 3}
    assert fmt({**stat, "undefined": 0}) == "5,000 [4,000, 6,000] (2/3 seeds)"
    assert fmt(stat) == "5,000 [4,000, 6,000] (2/3 seeds)"  # results from before the count
    assert fmt({**stat, "undefined": 1}) == (
        "5,000 [4,000, 6,000] (2/2 seeds; 1 undefined: scratch ended at random)"
    )
    nan = float("nan")
    none = {"mean": nan, "low": nan, "high": nan, "reached": 0, "seeds": 3, "undefined": 3}
    assert fmt(none) == "undefined: scratch ended at random"


def test_report_tables_by_hand(bench):
    common = bench.common
    results = hand_results()
    table = common.target_table(results)
    modes = bench.minatar.MODES
    summary = common.summarise(table, ["Breakout", "Freeway"], modes)
    rows = common.target_rows(summary, "Breakout")
    assert rows[2].startswith("| scratch | 3 | 0.00 [0.00, 0.00] | 0.00 [0.00, 0.00] | 10.00")
    assert rows[2].endswith(  # ratio 1, area difference 0 against itself
        "| 1.00 [1.00, 1.00] | 0.00 [0.00, 0.00] | 10,000 [10,000, 10,000] (3/3 seeds) | "
        "reference |"
    )
    freeze = next(row for row in rows if row.startswith("| freeze"))
    assert "| 4.00 [4.00, 4.00] | 0.40 [0.40, 0.40] | -" in freeze  # below scratch's area
    assert "| not reached (0/3 seeds) |" in freeze
    assert freeze.endswith("| negative transfer |")
    forgetting = common.forgetting_rows(summary, "Breakout")
    assert forgetting[0] == "| mode | Asterix | Seaquest |"
    assert forgetting[2] == (
        "| finetune | 6.00 → 2.00 (4.00 [4.00, 4.00]) | 3.00 → 3.00 (0.00 [0.00, 0.00]) |"
    )
    verdicts = common.verdict_lines(table, summary, ["Breakout", "Freeway"], modes)
    assert verdicts[0].startswith("- **finetune**: transfer ratio averaged over Breakout, Freeway")
    assert verdicts[0].endswith("(seeds [0, 1, 2]): positive transfer.")
    assert verdicts[1].startswith("  - Breakout: 1.75 [") and "positive transfer" in verdicts[1]
    assert verdicts[2] == "  - Freeway: 1.00 [1.00, 1.00]: no clear transfer (interval includes 1)."
    cost = common.cost_rows(results, modes)
    assert "| pretrain | 6 | 900 | 500 |" in cost and "| scratch | 6 | 101 | 1000 |" in cost


def test_stack_curves_interpolates_onto_the_shortest_run(bench):
    steps, values = bench.common.stack_curves([[[0, 0], [10, 10], [20, 20]], [[0, 2], [15, 5]]])
    assert steps.tolist() == [0, 10]
    assert values.tolist() == [[0, 10], [2, 4]]


# --- report files ---------------------------------------------------------------------------------


def write_results(results_dir, results):
    results_dir.mkdir(parents=True)
    for item in results:
        (results_dir / f"{item['name']}.json").write_text(json.dumps(item))


def test_minatar_report_only_round_trip(bench, tmp_path, monkeypatch):
    write_results(tmp_path / "transfer_minatar_runs", hand_results())
    monkeypatch.setattr(bench.common, "run_benchmark", lambda *a: pytest.fail("no runs"))
    bench.minatar.main(["--report-only", "--out-dir", str(tmp_path)])
    text = (tmp_path / "transfer_minatar.md").read_text()
    assert text.startswith("# Transfer to a held-out MinAtar game (leave one out)")
    assert "### Breakout" in text and "### Freeway" in text
    assert text.index("### Breakout") < text.index("### Freeway")  # the games' order
    assert "| freeze | 3 |" in text and "negative transfer" in text
    assert "budget: pretraining 100,000 env steps per source task; target 10,000" in text
    assert "train_freq=4, eval_freq=5000, eval_episodes=10" in text
    assert "Linux-x, 2 CPUs, no GPU, Python 3.11, torch 2.13.0" in text
    assert "1.50 to 1.50 when the runs started" in text
    assert "6.00 → 2.00" in text and "![" in text
    assert (tmp_path / "transfer_minatar.png").stat().st_size > 0


def test_atari_report_only_round_trip_with_one_seed(bench, tmp_path):
    results = [
        {**result("Pacman", "scratch", 0, SCRATCH), "source_tasks": []},
        {**result("Pacman", "finetune", 0, scaled(1.2), {"Tetris": [[0, 3.0], [10_000, 1.0]]})},
    ]
    results[1]["source_tasks"] = ["Tetris"]
    results[1]["random_returns"]["Tetris"] = 0.0
    write_results(tmp_path / "transfer_atari_runs", results)
    bench.atari.main(["--report-only", "--out-dir", str(tmp_path)])
    text = (tmp_path / "transfer_atari.md").read_text()
    assert "far below the usual Atari budgets" in text
    assert "fewer than the protocol's 3" in text
    assert "| finetune | 1 |" in text
    assert (
        "- **finetune**, Pacman: 1.20 [1.20, 1.20]: one seed only, no interval: no verdict." in text
    )
    assert "dueling=true, learning_rate=0.0001" in text
    assert "3.00 → 1.00 (2.00 [2.00, 2.00])" in text
    assert (tmp_path / "transfer_atari.png").stat().st_size > 0


def test_no_finished_target_run_writes_no_report(bench, tmp_path):
    write_results(tmp_path / "transfer_atari_runs", [pretrain_result("x", 0)])
    assert bench.common.write_report(bench.atari.report_spec(), tmp_path, 0.0) is None
    assert not (tmp_path / "transfer_atari.md").exists()


def test_report_path_does_not_import_torch(tmp_path):
    write_results(tmp_path / "transfer_minatar_runs", hand_results())
    code = (
        "import sys, transfer_minatar; "
        f"transfer_minatar.main(['--report-only', '--out-dir', {str(tmp_path)!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=BENCH_DIR, check=True, capture_output=True)


def test_minatar_report_has_a_row_per_new_arm_after_the_modes(bench, tmp_path):
    results = hand_results()
    for seed in (0, 1, 2):
        results += [
            result("Breakout", "progressive", seed, scaled(1.2), FORGETTING),
            {**result("Breakout", "finetune", seed, scaled(0.5), FORGETTING),
             "name": f"Breakout-finetune-l2init-seed{seed}", "arm": "finetune-l2init"},
        ]  # fmt: skip
    write_results(tmp_path / "transfer_minatar_runs", results)
    bench.minatar.main(["--report-only", "--out-dir", str(tmp_path)])
    text = (tmp_path / "transfer_minatar.md").read_text()
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    breakout = rows[: rows.index("| mode", 1)]
    assert breakout[1:] == [f"| {m}" for m in ("scratch", "finetune", "freeze", "joint",
                                                "progressive", "finetune-l2init")]  # fmt: skip
    assert "| progressive | 3 |" in text and "1.20 [1.20, 1.20] |" in text
    assert "| finetune-l2init | 3 |" in text and "0.50 [0.50, 0.50] |" in text
    assert "`finetune-l2init`: finetune with `l2_init` 0.01" in text


def test_a_benchmark_started_with_sigint_ignored_takes_ctrl_c_again(bench):
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job's shell leaves it
    try:
        bench.common.interruptible()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
