"""The env backends benchmark: its main on a tiny budget writes a table with every setting."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from multiq.envs.pool import envpool_installed

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_benchmark_measures_every_backend_and_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # for speed_common
    spec = importlib.util.spec_from_file_location("atari_envs", BENCH_DIR / "atari_envs.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "atari_envs", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = tmp_path / "atari-envs.md"
    bench.main(
        ["--seconds", "0.05", "--n-envs", "2", "--workers", "2", "--atari-games", "Tetris",
         "--out", str(out)]
    )  # fmt: skip
    report = out.read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ALE") or "MinAtar (" in line]
    atari_backends = 3 if envpool_installed() else 2
    assert len(rows) == atari_backends + 2
    assert all(line.rstrip(" |").split("|")[-1].strip().replace(".", "").isdigit() for line in rows)
    assert "| ALE Tetris | 2 | ALE in process |" in report and "| 1.00 |" in report
    assert "Pipe round trip" in report and "- 2 envs (55 KiB):" in report
    assert "Load average at the end" in report
