"""The run folder: checkpoints and their crash-safe writes, metrics.jsonl, sample pictures, paths."""
