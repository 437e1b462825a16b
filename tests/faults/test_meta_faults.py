"""A meta run that meets an env error or a NaN keeps the checkpoint of its last whole iteration,
and resumes from it; `multiq report` rebuilds a meta run's plot."""

from __future__ import annotations

import faulty_envs
import pytest

from multiq.api import MultiTaskDQN
from multiq.cli import main
from multiq.recipes.meta import resume_meta
from multiq.report.meta import read_meta_csv

SETTINGS = {
    "meta_iterations": 3, "meta_batch_size": 1, "inner_steps": 120, "inner_learning_starts": 40,
    "inner_buffer_size": 500, "inner_target_update": 50, "meta_eval_freq": 0, "batch_size": 16,
    "hidden_size": 16, "eval_episodes": 2, "device": "cpu",
}  # fmt: skip


def meta_args(run_dir, fault: str) -> list[str]:
    pool = f"[{{id: gym:{faulty_envs.FAULTY_ID}, kwargs: {{fault: {fault}, at_step: 150}}}}]"
    sets = [f"{k}={v}" for k, v in SETTINGS.items()] + [f"meta_tasks={pool}"]
    return ["meta", "--run-dir", str(run_dir), *[x for s in sets for x in ("--set", s)]]


@pytest.mark.parametrize(("fault", "said"), [("raise", "injected env failure"),
                                             ("nan_obs", "non-finite observation")])  # fmt: skip
def test_a_fault_in_an_inner_loop_keeps_the_last_iteration_and_resumes(tmp_path, capsys, fault,
                                                                       said):  # fmt: skip
    faulty_envs.reset_counts()
    code = main(meta_args(tmp_path / "m", fault))
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err
    assert "checkpoint of iteration 1" in err and "multiq meta --resume" in err
    run = resume_meta(MultiTaskDQN, tmp_path / "m", {})
    assert run.state.iteration == 1 and len(read_meta_csv(tmp_path / "m")) == 1
    assert main(["meta", "--resume", str(tmp_path / "m")]) == 0  # the fault was used up
    assert [r["iteration"] for r in read_meta_csv(tmp_path / "m")] == [0, 1, 2]


def test_report_rebuilds_a_meta_run(tmp_path):
    sets = [f"{k}={v}" for k, v in SETTINGS.items()] + ["meta_tasks=gym:CartPole-v1"]
    args = ["meta", "--run-dir", str(tmp_path / "m"), *[x for s in sets for x in ("--set", s)]]
    assert main(args) == 0
    (tmp_path / "m" / "meta.png").unlink()
    assert main(["report", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "meta.png").is_file()
