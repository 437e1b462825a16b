"""The phase model as plain data: what a phase trains (`Phase`) and where a run stands
(`TrainState`). Both are JSON in checkpoints and `summary.json`."""
