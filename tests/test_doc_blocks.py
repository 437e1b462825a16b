"""Every code block of the documentation pages (docs/**/*.md) runs in a test, as README.md's
do (tests/test_readme.py uses the same rules):

- ```python blocks run as written, each in a fresh temporary folder (so each is self-contained
  and keeps its budgets short: a few thousand env steps at most).
- ```yaml blocks are config snippets: they load as a Config and their tasks build; a sweep file
  (with `grid` or `trials`) plans its trials, its `base` read from configs/.
- ```bash blocks: each `multiq` line is parsed by the CLI; `multiq train` lines build their
  config and tasks without training (their budgets take minutes to hours); `multiq config` and
  `multiq tasks` lines run. Synopsis lines (with [OPTIONS] or ...) and other programs' lines
  (make, pip, python) are not run: CI runs `make`, and installs need a network.
- A block whose fence has a title with "not run by the tests" (e.g. ```python title="Needs a
  GPU (not run by the tests)"```) is skipped, visibly on the page and in the test report; a
  python one is still compiled. Keep those few.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from multiq.cli import _config_from_args, build_parser, main
from multiq.config import Config
from multiq.tasks import make_taskset

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
NOT_RUN = "not run by the tests"
RUN_FOR_REAL = {"config", "tasks"}  # cheap, read-only subcommands


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: Path
    line: int
    language: str
    info: str  # what follows the language on the fence line (e.g. a title)
    body: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def not_run(self) -> bool:
        return NOT_RUN in self.info.lower()


def page_blocks(page: Path, language: str | None = None) -> list[Block]:
    """The fenced blocks of `page` (of one language if given), in order."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        lang, info, body = match.groups()
        if language is None or lang == language:
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(page, line, lang, info.strip(), body))
    return found


def doc_pages() -> list[Path]:
    """The documentation's Markdown sources."""
    return sorted(DOCS.rglob("*.md"))


def shell_commands(block: Block) -> Iterator[str]:
    """The `multiq ...` lines of a bash block (continuations joined, comments dropped)."""
    for line in block.body.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        words = shlex.split(line) if line and not line.startswith("#") else []
        if not words or Path(words[0]).name != "multiq":
            continue
        if "[" in line or "..." in line or "|" in line:
            continue  # a synopsis
        yield line


def run_python(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a python block as written in `tmp_path` (compiles it only if it is not run)."""
    code = compile(block.body, block.name, "exec")
    if block.not_run:
        pytest.skip(f"{block.name}: marked {block.info}")
    monkeypatch.chdir(tmp_path)
    exec(code, {"__name__": "__doc_block__"})


def check_yaml(block: Block, tmp_path: Path) -> None:
    """A yaml block loads as a Config whose tasks build; a sweep file plans its trials."""
    data = yaml.safe_load(block.body)
    if "grid" in data or "trials" in data:
        from multiq.scale.sweep import plan_trials, read_sweep

        (tmp_path / "sweep.yaml").write_text(block.body)
        assert plan_trials(read_sweep(tmp_path / "sweep.yaml"), root=ROOT / "configs")
        return
    config = Config.from_dict(data)
    assert len(make_taskset(config.tasks)) >= 1


def check_shell(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `multiq` line of a bash block parses; train lines build their config and tasks;
    `multiq config` and `multiq tasks` lines run and succeed."""
    if block.not_run:
        pytest.skip(f"{block.name}: marked {block.info}")
    monkeypatch.chdir(ROOT)
    for command in shell_commands(block):
        argv = shlex.split(command)[1:]
        args = build_parser().parse_args(argv)
        if args.command == "train" and not args.resume:
            assert len(make_taskset(_config_from_args(args).tasks)) >= 1, command
        if args.command in RUN_FOR_REAL:
            assert main(argv) in (0, None), command


def all_blocks(language: str) -> list[Block]:
    return [block for page in doc_pages() for block in page_blocks(page, language)]


def _ids(blocks: list[Block]) -> list[str]:
    return [block.name for block in blocks]


PYTHON = all_blocks("python")
YAML = all_blocks("yaml")
BASH = all_blocks("bash")


def test_the_docs_have_blocks_and_few_are_not_run():
    assert len(PYTHON) >= 10 and len(BASH) >= 10
    skipped = [block.name for block in PYTHON + YAML + BASH if block.not_run]
    assert len(skipped) <= 8, f"too many blocks not run by the tests: {skipped}"


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_blocks_run_as_written(block, tmp_path, monkeypatch):
    run_python(block, tmp_path, monkeypatch)


@pytest.mark.parametrize("block", YAML, ids=_ids(YAML))
def test_yaml_blocks_are_valid_configs(block, tmp_path):
    check_yaml(block, tmp_path)


@pytest.mark.parametrize("block", BASH, ids=_ids(BASH))
def test_shell_examples_parse_and_build_their_config(block, monkeypatch):
    check_shell(block, monkeypatch)
