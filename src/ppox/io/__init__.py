"""A run on disk and the policy in it: run directories, checkpoints, logs, plots, evaluation."""
