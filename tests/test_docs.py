"""The documentation site builds with warnings as errors (`mkdocs build --strict`, as `make
docs`), and its generated pages say what the code and the repository hold: every config key,
every subcommand, every recorded benchmark result, the changelog, the public API."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")

from multiq.cli import build_parser  # noqa: E402
from multiq.config.keys import KEYS, SECTIONS  # noqa: E402
from multiq.config.model import CONFIG_KEYS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of `config` into `site`."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
    return subprocess.run(
        [*command, "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_environ(), "NO_MKDOCS_2_WARNING": "1"},
    )


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def hooks():
    """docs/hooks.py, the module that generates pages."""
    spec = importlib.util.spec_from_file_location("multiq_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT / "mkdocs.yml", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_the_site_builds_strict_with_every_nav_page(site):
    for name in ["getting-started", "concepts", "guides/own-env", "reference/config", "changelog"]:
        assert (site / name / "index.html").is_file(), name
    assert (site / "index.html").is_file() and (site / "404.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is what catches broken links: the same site with one does not build."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    for name in ("benchmarks", "CHANGELOG.md", "multiq"):
        (tmp_path / name).symlink_to(ROOT / name)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [a page that is not there](missing.md).\n")
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "missing.md" in result.stdout + result.stderr


def test_the_config_reference_lists_exactly_the_config_keys(site):
    markdown = hooks().config_reference()
    headings = re.findall(r"^### `(\w+)` \{#\w+\}$", markdown, re.M)
    assert headings == list(CONFIG_KEYS)
    html = page(site, "reference/config")
    keys_part = html[html.index('id="section-run"') :]
    assert re.findall(r'<h3 id="([^"]+)"', keys_part) == list(CONFIG_KEYS)
    for section in SECTIONS:
        assert f'id="section-{section.name}"' in html


def test_the_config_reference_gives_each_keys_declaration(site):
    markdown = hooks().config_reference()
    entries = dict(re.findall(r"^### `(\w+)`.*?\n\n(.*?)(?=^### |^## |\Z)", markdown, re.M | re.S))
    for name, key in KEYS.items():
        entry = entries[name]
        assert f"type `{key.type}`" in entry, name
        if key.allowed():
            assert key.allowed() in entry, name
        for family in key.by_family:
            assert f"{family} `" in entry, (name, family)


def test_the_cli_reference_has_every_subcommand(site):
    html = page(site, "reference/cli")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"usage: multiq {name}" in html, name


def test_every_recorded_result_has_a_page_and_a_row_with_its_facts(site):
    index = page(site, "benchmarks")
    results = sorted(RESULTS.glob("*.md"))
    assert results
    for path in results:
        assert (site / "benchmarks" / path.stem / "index.html").is_file(), path.name
        assert f'href="{path.stem}/"' in index, path.name
    facts = [hooks().result_facts(path) for path in results]
    assert all(f["date"] for f in facts), "every result says when it was measured"


def test_the_changelog_and_the_api_pages_are_there(site):
    changelog = page(site, "changelog")
    first_version = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first_version in changelog
    api = page(site, "reference/api")
    for name in [
        "api.MultiTaskDQN",
        "api.MultiTaskDQN.learn",
        "config.Config",
        "tasks.make_taskset",
        "nets.SCHEMES",
        "mtl.BALANCERS",
        "report.write_report",
        "errors.ConfigError",
    ]:
        assert f'id="multiq.{name}"' in api, name
