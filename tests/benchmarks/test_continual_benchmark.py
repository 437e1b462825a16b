"""The continual benchmark: job planning, the DML add run's resume decisions and copy, result
JSONs, and the report from hand-written results whose numbers are worked out by hand below.

No training except the smoke test at the end (two classic tasks, a few hundred steps).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmarks

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
SEQ = ["CartPole", "Acrobot"]  # the hand-written results' sequence (numbers are made up)
CLASSIC = ["--sequence", "classic:CartPole", "classic:Acrobot", "--dml-new", "classic:Acrobot"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmarks(continual="continual_minatar")


def args_of(bench, tmp_path, *extra):
    return bench.continual.parse_args(
        ["--run-root", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out"), *extra]
    )


def touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_loading_registers_nothing_permanently(bench):
    assert bench.continual.common is bench.common
    assert not {"transfer_common", "continual_minatar"} & set(sys.modules)
    assert str(BENCH_DIR) not in sys.path


# --- jobs -----------------------------------------------------------------------------------------


def test_default_jobs_names_and_dependencies(bench, tmp_path):
    jobs = bench.continual.build_jobs(args_of(bench, tmp_path))
    games = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
    per_seed = [
        "dml-base-without-SpaceInvaders-seed{s}",
        *(
            f"continual-{m}-seed{{s}}"
            for m in ("finetune", "rehearsal", "ewc", "distill", "progressive")
        ),
        "multitask-seed{s}",
        *(f"single-{g}-seed{{s}}" for g in games),
        "dml-add-SpaceInvaders-seed{s}",
    ]
    assert [job.name for job in jobs] == [n.format(s=s) for s in (0, 1, 2) for n in per_seed]
    after = {job.name: job.after for job in jobs if job.after}
    assert after == {
        f"dml-add-SpaceInvaders-seed{s}": f"dml-base-without-SpaceInvaders-seed{s}"
        for s in (0, 1, 2)
    }  # continual and reference runs need nothing
    assert {job.kind for job in jobs if job.name.startswith("continual")} == {"continual"}


def sets(**extra):
    settings = {
        "scheme": "shared",
        "train_freq": 4,
        "eval_freq": 10000,
        "eval_episodes": 10,
        "device": "cpu",
        "tensorboard": "false",
        "progress_bar": "false",
        **extra,
    }
    return [flag for key, value in settings.items() for flag in ("--set", f"{key}={value}")]


def test_child_commands_exact(bench):
    args = bench.continual.parse_args(["--seeds", "1"])
    jobs = {job.name: job for job in bench.continual.build_jobs(args)}
    five = "minatar:Asterix,minatar:Breakout,minatar:Freeway,minatar:Seaquest,minatar:SpaceInvaders"
    run = "runs/continual_minatar/"
    assert list(jobs["continual-rehearsal-seed1"].argv) == [
        "continual", "--sequence", five, "--method", "rehearsal", "--steps-per-task", "100000",
        "--seed", "1", "--run-dir", run + "continual-rehearsal-seed1", *sets(save_replay="true"),
    ]  # fmt: skip
    assert list(jobs["continual-ewc-seed1"].argv)[-14:] == sets()
    # progressive sets its own scheme: its run carries no scheme key, nor replay
    assert list(jobs["continual-progressive-seed1"].argv) == [
        "continual", "--sequence", five, "--method", "progressive", "--steps-per-task", "100000",
        "--seed", "1", "--run-dir", run + "continual-progressive-seed1", *sets()[2:],
    ]  # fmt: skip
    assert "scheme" not in jobs["continual-progressive-seed1"].info["settings"]
    assert list(jobs["single-Freeway-seed1"].argv) == [
        "train", "--tasks", "minatar:Freeway", "--steps", "100000", "--seed", "1",
        "--run-dir", run + "single-Freeway-seed1", *sets(),
    ]  # fmt: skip
    assert list(jobs["multitask-seed1"].argv)[:3] == ["train", "--tasks", five]
    base = "dml-base-without-SpaceInvaders-seed1"
    assert list(jobs[base].argv) == [
        "train", "--tasks", five.rsplit(",", 1)[0], "--steps", "100000", "--seed", "1",
        "--run-dir", run + base, *sets(save_replay="true"),
    ]  # fmt: skip
    add = jobs["dml-add-SpaceInvaders-seed1"]
    assert list(add.argv) == [
        "train", "--resume", run + "dml-add-SpaceInvaders-seed1", "--add-tasks",
        "minatar:SpaceInvaders", "--steps", "100000", "--train", "all", "--rehearse",
    ]  # fmt: skip
    assert add.info["old_tasks"] == ["Asterix", "Breakout", "Freeway", "Seaquest"]
    assert (add.info["new_task"], add.info["base"]) == ("SpaceInvaders", base)


def test_dml_options_and_extra_settings(bench, tmp_path):
    args = args_of(
        bench, tmp_path, *CLASSIC, "--dml-train", "new", "--no-dml-rehearse",
        "--set", "learning_starts=50", "--seeds", "0", "--methods", "ewc",
    )  # fmt: skip
    jobs = {job.name: job for job in bench.continual.build_jobs(args)}
    add = jobs["dml-add-Acrobot-seed0"]
    assert list(add.argv[-2:]) == ["--train", "new"] and "--rehearse" not in add.argv
    assert jobs["dml-base-without-Acrobot-seed0"].argv[2] == "classic:CartPole"
    assert jobs["continual-ewc-seed0"].argv[-2:] == ("--set", "learning_starts=50")
    assert sorted(jobs) == sorted(
        [
            "continual-ewc-seed0",
            "multitask-seed0",
            "single-CartPole-seed0",
            "single-Acrobot-seed0",
            "dml-base-without-Acrobot-seed0",
            "dml-add-Acrobot-seed0",
        ]
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--dml-new", "Pong"],
        ["--sequence", "Asterix", "Asterix"],
        ["--sequence", "Asterix"],
        ["--set", "learning_starts"],
    ],
)
def test_bad_command_lines_are_refused(bench, argv, capsys):
    with pytest.raises(SystemExit):
        bench.continual.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_every_child_command_parses_with_the_cli_and_config(bench):
    from multiq.cli import build_parser
    from multiq.config import Config

    parser = build_parser()
    for job in bench.continual.build_jobs(bench.continual.parse_args([])):
        parsed = parser.parse_args(list(job.argv))
        expected = "continual" if job.kind == "continual" else "train"
        assert parsed.command == expected, job.name
        Config().with_overrides(parsed.set)  # every --set key exists and is valid
        if job.kind == "dml-add":
            assert parsed.add_tasks == "minatar:SpaceInvaders" and parsed.resume
            assert (parsed.train, parsed.rehearse, parsed.steps) == ("all", True, 100_000)
        replay = "save_replay=true" in parsed.set
        assert replay == (
            job.kind == "dml-base" or job.name.split("-")[1] in ("rehearsal", "distill")
        )


# --- planning and the DML add run ---------------------------------------------------------------


def write_config(run_dir, tasks):
    touch(run_dir / "config.yaml", f"# multiq run config\ntasks: {json.dumps(tasks)}\nseed: 0\n")


def test_decide_for_the_dml_add_run(bench, tmp_path):
    args = args_of(bench, tmp_path, *CLASSIC, "--seeds", "0", "--methods", "finetune")
    continual, common, layout = bench.continual, bench.common, bench.continual.layout(args)
    jobs = {job.name: job for job in continual.build_jobs(args)}
    add, base = jobs["dml-add-Acrobot-seed0"], "dml-base-without-Acrobot-seed0"
    add_dir, base_dir = layout.run_dir(add.name), layout.run_dir(base)
    assert continual.decide(add, layout) == common.START  # waits for the base (run_jobs)
    touch(layout.result_file(base), "{}")
    assert continual.decide(add, layout) == common.BLOCKED  # base folder gone
    write_config(base_dir, "classic:CartPole")
    touch(base_dir / "checkpoint.pt")
    assert continual.decide(add, layout) == common.BLOCKED  # no replay to rehearse
    touch(base_dir / "replay.npz")
    assert continual.decide(add, layout) == common.START  # copy, then add
    add_dir.mkdir(parents=True)
    assert continual.decide(add, layout) == common.RESTART  # a half-made folder: copy again
    write_config(add_dir, "classic:CartPole")
    touch(add_dir / "checkpoint.pt")
    assert continual.decide(add, layout) == common.START  # the copy: its add phase starts
    write_config(
        add_dir, [{"id": "classic:CartPole"}, {"id": "classic:Acrobot", "name": "Acrobot"}]
    )
    assert continual.decide(add, layout) == common.RESUME  # added: a plain resume
    touch(add_dir / "summary.json")
    touch(add_dir / "model.pt")
    assert continual.decide(add, layout) == common.COLLECT
    touch(layout.result_file(add.name), "{}")
    assert continual.decide(add, layout) == common.SKIP
    single = jobs["single-Acrobot-seed0"]
    assert continual.decide(single, layout) == common.decide(single, layout) == common.START


def test_plan_keeps_the_order_and_rejects_an_unplanned_dependency(bench, tmp_path):
    args = args_of(bench, tmp_path, "--seeds", "0")
    jobs = bench.continual.build_jobs(args)
    planned = bench.continual.plan(jobs, bench.continual.layout(args))
    assert [job for job, _ in planned] == jobs
    with pytest.raises(ValueError, match="dml-base-without-SpaceInvaders-seed0"):
        bench.continual.plan(jobs[1:], bench.continual.layout(args))


def write_run_folder(run_dir, curves, random, phases, continual=None):
    """A finished run folder: metrics.csv (eval curves, random returns), summary.json."""
    rows = [f"{s},0.0,task/{t}/return,{v}" for t, c in curves.items() for s, v in c]
    rows += [f"0,0.0,task/{t}/random_return,{v}" for t, v in random.items()]
    touch(run_dir / "metrics.csv", "step,wall_time_s,key,value\n" + "\n".join(rows) + "\n")
    tasks = {
        t: {"return_mean": c[-1][1], "random_return_mean": random[t]} for t, c in curves.items()
    }
    summary = {"tasks": tasks, "wall_time_s": 50.0, "env_steps_per_s": 400.0, "phases": phases}
    summary["env_steps_per_task"] = phases[-1]["end_step"]
    if continual is not None:
        summary["continual"] = continual
    touch(run_dir / "summary.json", json.dumps(summary))
    touch(run_dir / "model.pt")


def phase(name, tasks, start, end):
    return {"name": name, "tasks": tasks, "start_step": start, "end_step": end}


DML_PHASES = [phase("train", ["CartPole"], 0, 100), phase("add-Acrobot", ["Acrobot"], 100, 200)]


def test_the_dml_add_run_copies_the_base_then_adds_and_prunes_replay(bench, tmp_path, monkeypatch):
    args = args_of(bench, tmp_path, *CLASSIC, "--seeds", "0", "--methods", "finetune")
    continual, common, layout = bench.continual, bench.common, bench.continual.layout(args)
    add = next(job for job in continual.build_jobs(args) if job.kind == "dml-add")
    base_dir, add_dir = layout.run_dir(add.after), layout.run_dir(add.name)
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "replay.npz", "run.json"):
        touch(base_dir / name, name)
    for name in ("summary.json", "model.pt", "curves.png"):
        touch(base_dir / name)
    commands = []

    def run_logged(command, log):
        commands.append(command)
        copied = sorted(p.name for p in add_dir.iterdir())
        assert copied == ["checkpoint.pt", "config.yaml", "metrics.csv", "replay.npz", "run.json"]
        assert (add_dir / "replay.npz").read_text() == "replay.npz"
        curves = {"CartPole": [(100, 9.0), (200, 7.0)], "Acrobot": [(100, 0.0), (200, 10.0)]}
        write_run_folder(add_dir, curves, {"CartPole": 0.0, "Acrobot": 0.0}, DML_PHASES)
        return 0

    monkeypatch.setattr(common, "run_logged", run_logged)
    assert continual.execute(add, common.START, layout)
    assert commands == [common.child_command(add.argv)]
    saved = json.loads(layout.result_file(add.name).read_text())
    assert saved["phases"] == DML_PHASES and saved["new_task"] == "Acrobot"
    assert saved["curves"]["Acrobot"] == [[100, 0.0], [200, 10.0]]
    assert not (add_dir / "replay.npz").exists() and not (base_dir / "replay.npz").exists()
    assert not add_dir.with_name(add_dir.name + ".copying").exists()


def test_a_failed_child_writes_no_json(bench, tmp_path, monkeypatch):
    args = args_of(bench, tmp_path, "--seeds", "0")
    job = bench.continual.continual_job("ewc", 0, args)
    layout = bench.continual.layout(args)
    monkeypatch.setattr(bench.common, "run_logged", lambda command, log: 130)
    assert not bench.continual.execute(job, bench.common.RESUME, layout)
    assert not layout.result_file(job.name).exists()


def test_a_continual_result_rebuilds_the_evaluation_matrix(bench, tmp_path):
    from multiq.report.continual import evaluation_matrix

    run_dir = tmp_path / "continual-finetune-seed0"
    curves = {
        "CartPole": [(0, 1.0), (50, 5.0), (100, 10.0), (200, 4.0)],
        "Acrobot": [(0, -500.0), (100, -400.0), (150, -300.0), (200, -100.0)],
    }
    phases = [phase("1-CartPole", ["CartPole"], 0, 100), phase("2-Acrobot", ["Acrobot"], 100, 200)]
    info = {"method": "finetune", "sequence": SEQ, "cycles": 1, "steps_per_task": 100}
    write_run_folder(run_dir, curves, {"CartPole": 9.0, "Acrobot": -500.0}, phases, info)
    job = bench.continual.continual_job("finetune", 0, args_of(bench, tmp_path, *CLASSIC))
    saved = json.loads(json.dumps(bench.continual.extract_result(job, run_dir)))
    rebuilt, read = bench.continual.matrix_from_result(saved), evaluation_matrix(run_dir)
    np.testing.assert_array_equal(rebuilt.returns, read.returns)
    np.testing.assert_array_equal(rebuilt.random, read.random)
    assert rebuilt.returns.tolist() == [[10.0, -400.0], [4.0, -100.0]]
    assert (rebuilt.phases, rebuilt.phase_steps) == (read.phases, read.phase_steps)
    assert (rebuilt.tasks, rebuilt.trained_in) == (read.tasks, read.trained_in)
    assert rebuilt.curves == read.curves and saved["continual"] == info


def write_model(path, shapes):
    """A model.pt whose online network holds zero tensors of `shapes`."""
    import torch

    from multiq.train.checkpoint import save_tensors

    online = {f"w{i}": torch.zeros(shape) for i, shape in enumerate(shapes)}
    save_tensors(path, "model", {"config": {}}, {"online": online})


def test_results_record_the_network_weights_and_progressive_columns(bench, tmp_path):
    continual = bench.continual
    args = args_of(bench, tmp_path, *CLASSIC)
    curves = {"CartPole": [(0, 1.0), (100, 10.0), (200, 4.0)], "Acrobot": [(0, -500.0)]}
    phases = [phase("1-CartPole", ["CartPole"], 0, 100), phase("2-Acrobot", ["Acrobot"], 100, 200)]
    random = {"CartPole": 9.0, "Acrobot": -500.0}
    run_dir = tmp_path / "continual-progressive-seed0"
    write_run_folder(run_dir, curves, random, phases, {"method": "progressive"})
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["progressive"] = {"column_parameters": {"CartPole": 700, "Acrobot": 950}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_model(run_dir / "model.pt", [(4, 64), (64,), (64, 2), (2,)])  # 256 + 64 + 128 + 2
    job = continual.continual_job("progressive", 0, args)
    saved = json.loads(json.dumps(continual.extract_result(job, run_dir)))
    assert saved["parameters"] == 450
    assert saved["column_parameters"] == {"CartPole": 700, "Acrobot": 950}
    # a model.pt that is not a multiq model: no count; no progressive section: no columns
    other = tmp_path / "continual-ewc-seed0"
    write_run_folder(other, curves, random, phases, {"method": "ewc"})
    saved = continual.extract_result(continual.continual_job("ewc", 0, args), other)
    assert saved["parameters"] is None and "column_parameters" not in saved
    single = continual.single_job("classic:CartPole", 0, args)
    assert "parameters" not in continual.extract_result(single, other)


# --- the report from hand-written results -------------------------------------------------------

A = "CartPole"
B = "Acrobot"
RANDOM = {A: 0.0, B: 0.0}
REF = [[50, 5.0], [100, 10.0]]  # every single-task run: final 10, AUC over 100 steps 0.5


def result(name, kind, seed, **fields):
    return {
        "name": name,
        "kind": kind,
        "benchmark": "continual_minatar",
        "seed": seed,
        "sequence": SEQ,
        "steps_per_task": 100,
        "settings": {"scheme": "shared", "eval_freq": 50, "eval_episodes": 10},
        "random_returns": RANDOM,
        "wall_time_s": 100.0,
        "env_steps_per_s": 500.0,
        "machine": {"platform": "Linux-x", "cpus": 2, "python": "3.11", "torch": "2.13.0"},
        "invocation": "python benchmarks/continual_minatar.py",
        "load_average_1min_at_start": 1.5,
        **fields,
    }


def continual_result(method, seed, a, b, returns):
    matrix = {
        "phases": ["1-CartPole", "2-Acrobot"],
        "phase_steps": [[0, 100], [100, 200]],
        "tasks": SEQ,
        "trained_in": {A: 0, B: 1},
        "returns": returns,
        "random": [0.0, 0.0],
        "notes": [],
    }
    name = f"continual-{method}-seed{seed}"
    return result(name, "continual", seed, method=method, curves={A: a, B: b}, matrix=matrix)


def hand_results():
    """Two games x two seeds. p = R / 10 (random 0, reference 10), by hand:

    finetune seed 0: p = [[1, 0], [.4, 1]]: P .7, F .6; FT: CartPole's p over its phase
    (0, 0) (50, .5) (100, 1) has AUC .5 = the reference's, so 0; Acrobot's too: FT 0.
    finetune seed 1: p = [[1, .2], [.8, 1]]: P .9, F .2; Acrobot's AUC (.2+.8)/4 + (.8+1)/4 = .7,
    FT_Acrobot (.7 - .5) / .5 = .4, FT .2. Over seeds: P .8 [.7, .9], F .4 [.2, .6], FT .1 [0, .2].
    rehearsal, both seeds: p = [[1, 0], [1, .8]]: P .9, F 0; Acrobot's AUC .4/4 + 1.2/4 = .4,
    FT_Acrobot -.2, FT -.1; new game's p at its phase end .8 vs finetune's 1: cost "some".
    multi-task: finals (8, 6) and (10, 8): P .7 and .9 -> .8 [.7, .9].
    DML: the add phase starts at 100; Acrobot (100, 0) (150, 5 | 10) (200, 10) against scratch
    (0, 0 random) (50, 5) (100, 10): ratios 500/500 = 1 and 750/500 = 1.5 -> 1.25 [1, 1.5];
    threshold 8 at steps 100 and 50 -> 75; CartPole 9 -> 7: forgetting 2, 2/9 = .22.
    """
    finetune = [
        ([[0, 0], [50, 5], [100, 10], [150, 6], [200, 4]],
         [[0, 0], [50, 0], [100, 0], [150, 5], [200, 10]], [[10, 0], [4, 10]]),
        ([[0, 0], [50, 5], [100, 10], [150, 8], [200, 8]],
         [[0, 0], [50, 0], [100, 2], [150, 8], [200, 10]], [[10, 2], [8, 10]]),
    ]  # fmt: skip
    rehearsal = (
        [[0, 0], [50, 5], [100, 10], [150, 10], [200, 10]],
        [[0, 0], [50, 0], [100, 0], [150, 4], [200, 8]],
        [[10, 0], [10, 8]],
    )
    results = [continual_result("finetune", s, *finetune[s]) for s in (0, 1)]
    results += [continual_result("rehearsal", s, *rehearsal) for s in (0, 1)]
    for seed, finals in ((0, (8.0, 6.0)), (1, (10.0, 8.0))):
        results.append(
            result(
                f"multitask-seed{seed}", "multitask", seed, tasks=SEQ,
                curves={A: [[100, finals[0]]], B: [[100, finals[1]]]},
                final_returns=dict(zip(SEQ, finals, strict=True)),
            )
        )  # fmt: skip
        for game in SEQ:
            results.append(
                result(
                    f"single-{game}-seed{seed}", "single", seed, task=game, tasks=[game],
                    curves={game: REF}, final_returns={game: 10.0},
                )
            )  # fmt: skip
        joins = [[100, 0.0], [150, 5.0 if seed == 0 else 10.0], [200, 10.0]]
        results.append(
            result(
                f"dml-add-Acrobot-seed{seed}", "dml-add", seed, new_task=B,
                new_entry="classic:Acrobot", old_tasks=[A], dml_train="all", dml_rehearse=True,
                phases=DML_PHASES, curves={A: [[50, 5], [100, 9], [150, 8], [200, 7]], B: joins},
            )
        )  # fmt: skip
    return results


def write_results(folder, results):
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        (folder / f"{r['name']}.json").write_text(json.dumps(r))


def test_report_numbers_by_hand(bench):
    continual = bench.continual
    groups = continual.group(hand_results(), SEQ)
    reference, curves = continual.references(groups)
    assert reference == {A: 10.0, B: 10.0} and curves[A] == [(50, 5.0), (100, 10.0)]
    summaries = continual.method_summaries(groups, reference, curves)
    finetune, rehearsal = summaries["finetune"], summaries["rehearsal"]
    a = finetune.aggregate
    assert a["average_performance"]["mean"] == pytest.approx(0.8)
    assert (a["average_performance"]["low"], a["average_performance"]["high"]) == pytest.approx(
        (0.7, 0.9)
    )
    assert a["forgetting_mean"]["mean"] == pytest.approx(0.4)
    assert a["forward_transfer_mean"]["mean"] == pytest.approx(0.1)
    assert a["forward_transfer"][B]["high"] == pytest.approx(0.4)
    assert finetune.new_p["mean"] == finetune.learned_p["mean"] == pytest.approx(1.0)
    r = rehearsal.aggregate
    assert r["average_performance"]["mean"] == pytest.approx(0.9)
    assert r["forgetting_mean"]["mean"] == pytest.approx(0.0)
    assert r["forward_transfer_mean"]["mean"] == pytest.approx(-0.1)
    assert rehearsal.new_p["mean"] == pytest.approx(0.8)
    assert continual.best_method(summaries) == "rehearsal"
    stats = bench.continual.aggregate_seeds(continual.dml_pairs(groups))
    assert stats["target"][B]["transfer_ratio"]["mean"] == pytest.approx(1.25)
    assert stats["target"][B]["jumpstart"]["mean"] == pytest.approx(0.0)
    assert stats["target"][B]["time_to_threshold_steps"]["mean"] == pytest.approx(75)
    assert stats["source"][A]["forgetting"]["mean"] == pytest.approx(2.0)
    assert stats["source"][A]["forgetting_normalised"]["mean"] == pytest.approx(2 / 9)


@pytest.mark.parametrize(
    ("forgetting", "learned", "word"),
    [(0.1, 1.0, "yes"), (0.3, 1.0, "partly"), (0.7, 1.0, "no"), (0.0, 0.1, "undetermined")],
)
def test_keeps_text_thresholds(bench, forgetting, learned, word):
    assert bench.continual.keeps_text(forgetting, learned).startswith(word)


@pytest.mark.parametrize(
    ("new_p", "word"), [(0.95, "little or none"), (0.8, "some"), (0.5, "a lot")]
)
def test_cost_text_thresholds(bench, new_p, word):
    assert bench.continual.cost_text("ewc", new_p, ("finetune", 1.0), 0.0).startswith(word)
    assert bench.continual.cost_text("finetune", new_p, ("finetune", 1.0), 0.0).startswith("none")


def test_report_only_round_trip(bench, tmp_path, monkeypatch, capsys):
    continual = bench.continual
    write_results(tmp_path / "continual_minatar_runs", hand_results())
    monkeypatch.setattr(continual, "run_benchmark", lambda *a: pytest.fail("no runs"))
    argv = ["--report-only", "--out-dir", str(tmp_path), *CLASSIC]
    assert continual.main(argv) == 0
    text = (tmp_path / "continual_minatar.md").read_text()
    assert capsys.readouterr().out.strip().endswith(text.strip()[-200:])
    for row in (
        "| finetune | 2 | 0.80 [0.70, 0.90] | 0.40 [0.20, 0.60] | 0.10 [0.00, 0.20] | "
        "1.00 [1.00, 1.00] |",
        "| rehearsal | 2 | 0.90 [0.90, 0.90] | 0.00 [0.00, 0.00] | -0.10 [-0.10, -0.10] | "
        "0.80 [0.80, 0.80] |",
        "| multi-task `shared` (upper reference) | 2 | 0.80 [0.70, 0.90] | - | - | - |",
        "| DML | 0.00 [0.00, 0.00] | 0.00 [0.00, 0.00] | 10.00 [10.00, 10.00] | "
        "10.00 [10.00, 10.00] | 1.25 [1.00, 1.50] | 75 [50, 100] (2/2 seeds) | "
        "no clear transfer (interval includes 1) |",
        "| CartPole | 9.00 [9.00, 9.00] | 7.00 [7.00, 7.00] | 2.00 [2.00, 2.00] | "
        "0.22 [0.22, 0.22] |",
        "- **finetune**: keeps old skills: partly (it keeps 60% of the p",
        "- **rehearsal**: keeps old skills: yes (it keeps 100% of the p",
        "what it costs the new game: some (new games reach p = 0.80 at the end of their phase, "
        "finetune 1.00; forward transfer -0.10)",
        "## Best method by average performance: rehearsal",
        "the held games keep their skills: partly (they keep 78% of their gain over random)",
        "--train all` with rehearsal on",
        "- machine of the runs: Linux-x, 2 CPUs, no GPU, Python 3.11, torch 2.13.0",
        "- budget: 100 env steps per game",
        "budget caveat",
        "(fewer than the protocol's 3",
    ):
        assert row in text, row
    for figure in ("matrix", "sequence", "dml"):
        assert (tmp_path / f"continual_minatar_{figure}.png").stat().st_size > 0


def test_the_methods_table_gives_each_method_its_weights(bench, tmp_path):
    continual = bench.continual
    results = hand_results()  # recorded before the field: no `parameters`
    counts = {"continual-rehearsal-seed0": 12_345, "continual-rehearsal-seed1": 12_345}
    for r in results:
        if r["name"] in counts:
            r["parameters"] = counts[r["name"]]
        if r["name"] == "multitask-seed1":  # seed 0's JSON predates the field
            r["parameters"] = 999
    a = [[0, 0], [50, 5], [100, 10], [150, 10], [200, 10]]
    b = [[0, 0], [50, 0], [100, 0], [150, 4], [200, 8]]
    progressive = [
        {**continual_result("progressive", s, a, b, [[10, 0], [10, 8]]), "parameters": 20_000 + s,
         "column_parameters": {A: 9_000, B: 11_000 + s}}
        for s in (0, 1)
    ]  # fmt: skip
    groups = continual.group(results + progressive, SEQ)
    cells = continual.parameter_cells(groups)
    assert cells == {
        "finetune": "-",
        "rehearsal": "12,345",
        "progressive": "mixed: 20,000; 20,001",
        "multitask": "999",
    }
    reference, curves = continual.references(groups)
    summaries = continual.method_summaries(groups, reference, curves)
    table = continual.methods_table(
        summaries, {"mean": 0.8, "low": 0.7, "high": 0.9, "n": 2}, cells
    )
    assert table[0].endswith("| new games' p at the end of their phase | parameters |")
    assert table[2].startswith("| finetune | 2 |") and table[2].endswith("| - |")
    assert table[3].startswith("| rehearsal | 2 |") and table[3].endswith("| 12,345 |")
    assert table[4].startswith("| progressive | 2 |")
    assert table[-1] == (
        "| multi-task `shared` (upper reference) | 2 | 0.80 [0.70, 0.90] | - | - | - | 999 |"
    )
    assert continual.column_lines(groups) == [
        "- progressive: weights per column (its input layer, trunk, the lateral adapters into "
        "it and its head), in sequence order: CartPole 9,000, Acrobot mixed: 11,000; 11,001"
    ]
    # without the field anywhere (the recorded runs), every cell is `-`
    old = continual.parameter_cells(continual.group(hand_results(), SEQ))
    assert set(old.values()) == {"-"}


def test_report_only_on_an_empty_results_folder(bench, tmp_path, capsys):
    assert bench.continual.main(["--report-only", "--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert (
        "nothing to report" in out and "no result JSON" in out and "continual_minatar_runs" in out
    )
    assert not (tmp_path / "continual_minatar.md").exists()


def test_results_of_another_sequence_are_left_out(bench, tmp_path, capsys):
    write_results(tmp_path / "continual_minatar_runs", hand_results())
    assert bench.continual.main(["--report-only", "--out-dir", str(tmp_path)]) == 1
    assert "none of a continual or DML add run of the sequence Asterix" in capsys.readouterr().out


def test_report_path_does_not_import_torch(tmp_path):
    write_results(tmp_path / "continual_minatar_runs", hand_results())
    code = (
        "import sys, continual_minatar; "
        f"continual_minatar.main(['--report-only', '--out-dir', {str(tmp_path)!r}, "
        f"*{CLASSIC!r}]); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=BENCH_DIR, check=True, capture_output=True)


# --- smoke: the whole pipeline on two classic tasks -----------------------------------------------


def test_smoke_whole_pipeline_on_two_classic_tasks(bench, tmp_path, capsys):
    argv = [
        *CLASSIC, "--seeds", "0", "--methods", "rehearsal", "--steps-per-task", "200",
        "--eval-freq", "100", "--eval-episodes", "1", "--set", "learning_starts=50",
        "--set", "buffer_size=500", "--run-root", str(tmp_path / "runs"),
        "--out-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    assert bench.continual.main(argv) == 0, capsys.readouterr().out
    assert "6 of 6 runs finished" in capsys.readouterr().out
    saved = json.loads(
        (tmp_path / "out/continual_minatar_runs/dml-add-Acrobot-seed0.json").read_text()
    )
    assert [p["end_step"] for p in saved["phases"]] == [200, 400]
    assert (
        "## DML: a game joins a trained agent online"
        in (tmp_path / "out/continual_minatar.md").read_text()
    )
    assert not list((tmp_path / "runs").glob("*/replay.npz"))  # every replay was collected
    assert bench.continual.main(argv) == 0  # again: every run is skipped
    assert "6 skip" in capsys.readouterr().out


def test_a_final_return_of_zero_is_a_reference_not_a_missing_one(bench):
    continual = bench.continual
    results = [
        result(f"single-{A}-seed{s}", "single", s, task=A, tasks=[A], curves={A: REF},
               final_returns={A: value})
        for s, value in ((0, 0.0), (1, 4.0))
    ]  # fmt: skip
    reference, _ = continual.references(continual.group(results, SEQ))
    assert reference == {A: 2.0}
    assert continual.final_return({"final_returns": {A: None}}, A) != 0.0
