"""Ray Tune sweeps: a grid of configs as trials, one run folder each."""
