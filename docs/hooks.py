"""MkDocs hooks: the pages written from the code and the repository, at every build.

- ``reference/config.md``: the marker ``<!-- config-keys -->`` becomes every config key by
  section (type, default, allowed values, meaning, per-family default), read from the keys'
  declarations (`multiq.config.help.key_help`), so the reference cannot drift from the code.
- ``reference/cli.md``: the marker ``<!-- cli-help -->`` becomes each subcommand's ``--help``.
- ``benchmarks/<name>.md``: one page per recorded result in ``benchmarks/results/*.md`` (with
  its figures); the marker ``<!-- benchmark-results -->`` of ``benchmarks/index.md`` becomes a
  table of them with each one's command, machine and date.
- ``changelog.md``: the repository's ``CHANGELOG.md``.

mkdocs.yml names this file under ``hooks:``; ``exclude_docs`` keeps it out of the site.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG_MARKER = "<!-- config-keys -->"
CLI_MARKER = "<!-- cli-help -->"
RESULTS_MARKER = "<!-- benchmark-results -->"
_CODE = re.compile(r"(`[^`]*`)")


# --- the config reference ------------------------------------------------------------------------


def config_reference() -> str:
    """Markdown of every config key, by section, in declaration order: a ``###`` heading per
    key (its anchor is the key's name), then its type, default, allowed values, meaning and,
    for a key whose default follows the tasks, its value per observation family."""
    from multiq.config.help import flow_yaml, key_help
    from multiq.config.keys import SECTIONS

    titles = {section.name: section.title for section in SECTIONS}
    parts, current = [], None
    for h in key_help():
        if h.section != current:
            current = h.section
            parts.append(f"## {h.section}: {titles[h.section]} {{#section-{h.section}}}\n")
        facts = [f"type `{h.type}`", f"default `{flow_yaml(h.default)}`"]
        if h.allowed:
            facts.append(f"allowed: `{h.allowed}`")
        lines = [f"### `{h.name}` {{#{h.name}}}\n", " · ".join(facts) + "\n", _escape(h.meaning)]
        if h.by_family:
            values = ", ".join(f"{family} `{flow_yaml(v)}`" for family, v in h.by_family.items())
            lines.append(f"\n**Follows the tasks.** By observation family: {values} (unless set).")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _escape(text: str) -> str:
    """`text` with ``<`` and ``>`` outside code spans escaped, so that Markdown shows them."""
    pieces = _CODE.split(text)
    return "".join(
        p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in pieces
    )


# --- the command line ----------------------------------------------------------------------------


def cli_reference() -> str:
    """Each ``multiq`` subcommand's ``--help``, as the terminal shows it (100 columns)."""
    from multiq.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        parts = [f"## `multiq`\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, sub in commands.choices.items():
            parts.append(f"## `multiq {name}`\n\n```text\n{sub.format_help().rstrip()}\n```\n")
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


# --- benchmarks ----------------------------------------------------------------------------------


def result_files() -> list[Path]:
    """The recorded results: every ``benchmarks/results/*.md``, by name."""
    return sorted(RESULTS.glob("*.md"))


def result_facts(path: Path) -> dict[str, str]:
    """A result's title, and its date, command and machine as its head gives them ('' where
    it does not: the page itself says)."""
    lines = path.read_text().splitlines()
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), path.stem)
    head = "\n".join(lines[:16])
    date = re.search(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2})?", head)
    command = re.search(r"`((?:python|\.venv/bin/python|multiq)[^`]*)`", head)
    machine = re.search(r"machine[^:]*:\s*([^;\n]+)", head, re.I)
    return {
        "title": title,
        "date": date.group(0) if date else "",
        "command": f"`{command.group(1)}`" if command else "",
        "machine": machine.group(1).strip().rstrip("\\ `") if machine else "",
    }


def results_index() -> str:
    """A table of every recorded result: its page, date, command and machine."""
    rows = ["| result | date | command | machine |", "|---|---|---|---|"]
    for path in result_files():
        f = result_facts(path)
        cells = [f"[{f['title']}]({path.stem}.md)", f["date"], f["command"], f["machine"]]
        rows.append(
            "| " + " | ".join(c.replace("|", "\\|") or "see the page" for c in cells) + " |"
        )
    return "\n".join(rows) + "\n"


def result_page(path: Path) -> str:
    """A recorded result as a page: the file as it is, its figures after it if it shows none,
    and where it lives in the repository."""
    text = path.read_text()
    figures = [p for p in sorted(RESULTS.glob(f"{path.stem}*.png")) if p.name not in text]
    extra = "".join(f"\n![{p.stem}]({p.name})\n" for p in figures)
    source = f"\n---\n\n*Recorded in `benchmarks/results/{path.name}`.*\n"
    return text.rstrip() + "\n" + extra + source


# --- MkDocs events -------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    """Lists every recorded result (by file name) in the nav's Benchmarks section, after its
    index page, under "Recorded results"."""
    pages = [{p.stem: f"benchmarks/{p.name}"} for p in result_files()]
    for i, entry in enumerate(config["nav"] or []):
        if isinstance(entry, dict) and entry.get("Benchmarks") == "benchmarks/index.md":
            config["nav"][i] = {"Benchmarks": ["benchmarks/index.md", {"Recorded results": pages}]}
    return config


def on_files(files: Any, config: Any) -> Any:
    """Adds the generated pages: one per recorded result (and its figures), the changelog."""
    from mkdocs.structure.files import File

    for path in result_files():
        files.append(File.generated(config, f"benchmarks/{path.name}", content=result_page(path)))
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{png.name}", abs_src_path=str(png)))
    changelog = (ROOT / "CHANGELOG.md").read_text()
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replaces the markers with the generated Markdown."""
    for marker, build in (
        (CONFIG_MARKER, config_reference),
        (CLI_MARKER, cli_reference),
        (RESULTS_MARKER, results_index),
    ):
        if marker in markdown:
            markdown = markdown.replace(marker, build())
    return markdown
