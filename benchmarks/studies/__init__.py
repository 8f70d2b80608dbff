"""Studies that run the pipeline or its pieces and compare: above the measurement library."""
