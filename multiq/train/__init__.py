"""Training: the loop assembled from one run context, its recorder, evaluation, stop flag,
callbacks, persistence (model, checkpoint, resume) and the headless inner phase."""
