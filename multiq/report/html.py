"""Self-contained HTML pages: Markdown tables as HTML tables, images embedded as base64 PNG.

One file with no external resource (no script, no stylesheet link, no image file), so it can be
mailed or archived and still renders.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}pre{background:#f6f6f6;padding:1em}"
)
Section = tuple[str, "str | Path"]


def markdown_table(text: str) -> str:
    """A Markdown pipe table (header, rule, rows) as an HTML table; other lines as paragraphs."""
    rows = [line for line in text.splitlines() if line.strip()]
    table = [r for r in rows if r.lstrip().startswith("|")]
    other = [r for r in rows if not r.lstrip().startswith("|")]
    parts = [f"<p>{html.escape(line)}</p>" for line in other]
    if len(table) >= 2:
        header, body = _cells(table[0]), [_cells(r) for r in table[2:]]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        lines = ["".join(f"<td>{html.escape(c)}</td>" for c in row) for row in body]
        rows_html = "".join(f"<tr>{line}</tr>" for line in lines)
        parts.insert(0, f"<table><tr>{head}</tr>{rows_html}</table>")
    return "\n".join(parts)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def image_tag(path: Path, alt: str) -> str:
    """An <img> with the PNG's bytes inline."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, sections: Sequence[Section]) -> str:
    """A page of titled sections: a `Path` is an embedded image, text a Markdown table (or a
    `<pre>` block when it starts with ``pre:``)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, content in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, Path):
            body.append(image_tag(content, heading))
        elif content.startswith("pre:"):
            body.append(f"<pre>{html.escape(content[4:])}</pre>")
        else:
            body.append(markdown_table(content))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


REPORT_FILE = "report.html"


def run_report_sections(run_dir: Path) -> list[Section]:
    """What a run's HTML report shows: the results table, every plot the folder holds (curves,
    routing heat map, gradient-conflict map, continual matrix and sequence), the transfer /
    continual panels when the summary has them, and the config."""
    from multiq.report import format_markdown_table, read_summary
    from multiq.runio.layout import (
        CONFIG_FILE,
        CONFLICTS_FILE,
        CURVES_FILE,
        MATRIX_FILE,
        ROUTING_FILE,
        SEQUENCE_FILE,
    )

    summary = read_summary(run_dir)
    sections: list[Section] = [("Results (last evaluation)", format_markdown_table(summary))]
    plots = {
        CURVES_FILE: "Learning curves",
        ROUTING_FILE: "Routing weights",
        CONFLICTS_FILE: "Gradient conflicts",
        MATRIX_FILE: "Evaluation matrix",
        SEQUENCE_FILE: "All tasks over the sequence",
    }
    sections += [(title, run_dir / name) for name, title in plots.items()
                 if (run_dir / name).is_file()]  # fmt: skip
    sections += _panels(run_dir, summary)
    config = run_dir / CONFIG_FILE
    if config.is_file():
        sections.append(("Config", "pre:" + config.read_text()))
    return sections


def _panels(run_dir: Path, summary: dict) -> list[Section]:
    """The transfer and continual reports as text panels, when the run is one."""
    from multiq.report import format_continual_report, format_transfer_report

    panels: list[Section] = []
    if "transfer" in summary:
        panels.append(("Transfer", "pre:" + format_transfer_report(run_dir, None)))
    if "continual" in summary:
        panels.append(("Continual", "pre:" + format_continual_report(run_dir, None)))
    return panels


def write_run_report(run_dir: str | Path) -> Path:
    """Writes RUN_DIR/report.html (plots rebuilt first by the caller); returns its path."""
    from multiq.runio.files import atomic_write_text

    run_dir = Path(run_dir)
    page = html_page(f"multiq run {run_dir.resolve().name}", run_report_sections(run_dir))
    atomic_write_text(run_dir / REPORT_FILE, page)
    return run_dir / REPORT_FILE
