"""Studies: scripts that run the pipeline and compare edgesmith's results with peers,
built on the measurement library in :mod:`edgesmith.benchmarks`. They are run from a
source checkout (``python -m edgesmith.benchmarks.studies.flagships``), are not shipped
in the wheel and are not imported by the tests; their committed results are in
``results/`` beside them."""
