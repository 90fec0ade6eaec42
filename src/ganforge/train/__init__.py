"""Training: the algorithm's step, the trainer's state, device placement, the loop and what it runs on schedule."""
