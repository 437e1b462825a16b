"""Every code block of README.md runs in a test, by the rules of tests/test_doc_blocks.py:
python blocks run as written (short budgets), yaml blocks load as configs, and each `multiq`
line of a bash block is parsed (train lines build their config and tasks; `multiq config` and
`multiq tasks` run). `make` lines are what CI itself runs (.ci/run calls `make test`).

The README is the front door: short, no dated measurements (those live on the benchmarks page
with their command, machine and date), and its links into docs/ lead to pages that exist.
"""

from __future__ import annotations

import re

import pytest
from test_doc_blocks import ROOT, check_shell, check_yaml, page_blocks, run_python, shell_commands

README = ROOT / "README.md"
PYTHON = page_blocks(README, "python")
YAML = page_blocks(README, "yaml")
BASH = page_blocks(README, "bash")
MAX_LINES = 250


def test_the_readme_has_the_blocks_these_tests_expect():
    assert len(PYTHON) >= 2
    assert {b.language for b in page_blocks(README)} <= {"python", "yaml", "bash"}
    assert len([c for b in BASH for c in shell_commands(b)]) >= 4
    assert not [b.name for b in PYTHON + YAML + BASH if b.not_run], "every README block runs"


def test_the_set_up_commands_are_the_ones_ci_runs():
    setup = BASH[0].body.split()
    assert setup[:2] == ["make", "run"] and "make" in setup and "test" in setup
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_a_short_front_door_without_dated_measurements():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", text), "dates go to the benchmarks page"


def test_the_readme_links_into_the_docs_lead_to_pages():
    links = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)(?:#[^)]*)?\)", README.read_text())
    assert len(links) >= 10
    assert [link for link in links if not (ROOT / link).is_file()] == []


BLOCKS = PYTHON + YAML + BASH


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_every_block_runs(block, tmp_path, monkeypatch):
    if block.language == "python":
        run_python(block, tmp_path, monkeypatch)
    elif block.language == "yaml":
        check_yaml(block, tmp_path)
    else:
        check_shell(block, monkeypatch)
