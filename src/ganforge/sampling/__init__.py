"""Using a trained generator: loading it from a run, sampling, interpolating, writing the samples."""
