"""Studies that run the whole pipeline (``python -m edgesmith.benchmarks.studies.NAME``)."""
