"""Training: the loop assembled from one run context, its recorder, evaluation, stop flag,
callbacks, checkpoints and the headless inner phase."""
