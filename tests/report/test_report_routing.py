"""Routing heat map (routing.png) from the routing rows of metrics.csv."""

from __future__ import annotations

from pathlib import Path

from multiq.report import ROUTING_FILE, plot_routing, read_metrics, routing_weights

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_metrics(run_dir: Path, rows: list[str]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").write_text("\n".join(["step,wall_time_s,key,value", *rows]) + "\n")
    return run_dir


def test_last_routing_weights_per_task_in_module_order(tmp_path):
    run_dir = _write_metrics(
        tmp_path,
        [
            "100,1.0,task/Pong/routing_1,0.5",
            "100,1.0,task/Pong/routing_0,0.5",
            "100,1.0,task/Breakout/routing_0,0.9",
            "100,1.0,task/Breakout/routing_1,0.1",
            "100,1.0,task/Pong/loss,2.0",
            "200,2.0,task/Pong/routing_0,0.2",
            "200,2.0,task/Pong/routing_1,0.8",
        ],
    )
    assert routing_weights(read_metrics(run_dir)) == {"Pong": [0.2, 0.8], "Breakout": [0.9, 0.1]}
    path = plot_routing(run_dir)
    assert path == run_dir / ROUTING_FILE
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_no_routing_rows_writes_nothing(tmp_path):
    run_dir = _write_metrics(tmp_path, ["100,1.0,task/Pong/loss,2.0"])
    assert plot_routing(run_dir) is None
    assert not (run_dir / ROUTING_FILE).exists()
