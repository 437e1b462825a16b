"""Every code block of README.md is run (or, for long shell commands, dry-run) by a test.

- ```python blocks run as written, in a temporary folder.
- ```yaml blocks are config snippets: they load as a Config and their tasks build.
- ```bash blocks: `make` lines are what CI itself runs (skipped here); each `multiq` example
  line is parsed by the CLI and its config and tasks are built, without training (the budgets
  of those examples take minutes to hours). Synopsis lines (with [OPTIONS] or ...) are skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from multiq.cli import _config_from_args, build_parser
from multiq.config import Config
from multiq.tasks import make_taskset

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def shell_commands() -> list[str]:
    """`multiq ...` example lines of the bash blocks (continuations joined)."""
    commands = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            words = shlex.split(line) if line else []
            if not words or Path(words[0]).name != "multiq":
                continue
            if "[" in line or "..." in line or "|" in line:
                continue  # a synopsis
            commands.append(line)
    return commands


def test_the_readme_has_the_blocks_these_tests_expect():
    assert len(blocks("python")) >= 1 and len(blocks("yaml")) >= 1
    assert len(shell_commands()) >= 6


@pytest.mark.parametrize("code", blocks("python"))
def test_python_blocks_run_as_written(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("snippet", blocks("yaml"))
def test_yaml_blocks_are_valid_configs(snippet):
    config = Config.from_dict(yaml.safe_load(snippet))
    assert len(make_taskset(config.tasks)) >= 1


@pytest.mark.parametrize("command", shell_commands())
def test_shell_examples_parse_and_build_their_config(command, monkeypatch):
    monkeypatch.chdir(README.parent)
    args = build_parser().parse_args(shlex.split(command)[1:])
    if args.command == "train" and not args.resume:
        config = _config_from_args(args)
        assert len(make_taskset(config.tasks)) >= 1
