"""`torch_threads`: applied while multiq trains and evaluates, then torch's setting is back."""

from __future__ import annotations

import torch

from multiq.api import MultiTaskDQN
from multiq.cli import build_parser, main
from multiq.config import Config
from multiq.threads import torch_threads
from multiq.train.callbacks import Callback

TINY = {
    "tasks": "gym:CartPole-v1", "total_steps_per_task": 300, "learning_starts": 100,
    "buffer_size": 500, "eval_freq": 0, "eval_episodes": 1, "tensorboard": False,
    "progress_bar": False, "hidden_size": 16,
}  # fmt: skip


class SeenThreads(Callback):
    def __init__(self):
        self.seen: set[int] = set()

    def on_step(self, trainer) -> bool:
        self.seen.add(torch.get_num_threads())
        return True


def test_the_block_runs_with_the_count_and_restores_the_previous_one():
    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: torch's own setting
        assert torch.get_num_threads() == before


def test_learn_trains_with_the_configured_threads_and_gives_them_back(tmp_path):
    before = torch.get_num_threads()
    seen = SeenThreads()
    model = MultiTaskDQN(config=Config(**TINY, torch_threads=2), run_dir=tmp_path / "r")
    model.learn(callbacks=seen)
    assert seen.seen == {2}
    assert torch.get_num_threads() == before


def test_the_cli_flag_sets_the_key_and_eval_takes_it(tmp_path, capsys):
    assert build_parser().parse_args(["eval", "r", "--torch-threads", "2"]).torch_threads == 2
    sets = [a for k, v in TINY.items() if k != "tasks" for a in ("--set", f"{k}={v}")]
    run = tmp_path / "r"
    code = main(["train", "--tasks", "gym:CartPole-v1", "--torch-threads", "2", "--run-dir",
                 str(run), *sets])  # fmt: skip
    assert code == 0
    assert "torch_threads: 2" in (run / "config.yaml").read_text()
    assert main(["eval", str(run), "--episodes", "1", "--torch-threads", "1"]) == 0
    assert main(["train", "--tasks", "gym:CartPole-v1", "--torch-threads", "-1"]) == 2
    assert "torch_threads" in capsys.readouterr().err
