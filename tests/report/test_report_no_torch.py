"""multiq.report must run without importing torch (it reads only files).

The contract "report reads run folders only" (pyproject.toml, `lint-imports`) forbids any import
chain from multiq.report to torch within multiq; this test runs the reports, so it also catches
torch pulled in at run time or through a third party (matplotlib, rliable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import multiq

REPO_ROOT = Path(multiq.__file__).resolve().parents[1]
SCRIPT = """
import sys
import multiq.report
table, png = multiq.report.write_report(sys.argv[1])
assert png.is_file(), png
matrix = multiq.report.evaluation_matrix(sys.argv[2])
for path in (multiq.report.plot_matrix(matrix), multiq.report.plot_sequence_curves(matrix)):
    assert path.is_file(), path
assert "Evaluation matrix" in multiq.report.format_continual_report(sys.argv[2])
import multiq.report.compare, multiq.report.meta, rliable.library, rliable.metrics
print("torch" in sys.modules)
"""


def test_reports_do_not_import_torch(tmp_path: Path) -> None:
    plain, continual = tmp_path / "plain", tmp_path / "continual"
    _write_run(plain, "1000,1.0,task/Breakout/return,2.0\n", {})
    phases = [
        {"name": name, "tasks": [name], "start_step": start, "end_step": start + 100}
        for name, start in (("Breakout", 0), ("Asterix", 100))
    ]
    rows = "".join(
        f"{step},1.0,task/{task}/return,{step / 100}\n"
        for step in (100, 200)
        for task in ("Breakout", "Asterix")
    )
    _write_run(continual, rows, {"phases": phases})
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(plain), str(continual)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "importing multiq.report pulled in torch"


def _write_run(run_dir: Path, rows: str, summary: dict[str, object]) -> None:
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("step,wall_time_s,key,value\n" + rows)
    tasks = {"Breakout": {"return_mean": 2.0, "return_std": 0.1, "episodes": 5}}
    (run_dir / "summary.json").write_text(json.dumps({"tasks": tasks, **summary}))
