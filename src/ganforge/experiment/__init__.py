"""``ganforge experiment``: every variant of a spec over several seeds, resumable, with a summary table."""
