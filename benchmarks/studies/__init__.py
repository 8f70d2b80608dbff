"""Studies that run the pipeline and compare (above the measurement library)."""
