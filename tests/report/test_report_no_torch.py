"""multiq.report must run without importing torch (it reads only files)."""

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
print("torch" in sys.modules)
"""


def test_write_report_does_not_import_torch(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "step,wall_time_s,key,value\n1000,1.0,task/Breakout/return,2.0\n"
    )
    summary = {"tasks": {"Breakout": {"return_mean": 2.0, "return_std": 0.1, "episodes": 5}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "importing multiq.report pulled in torch"
