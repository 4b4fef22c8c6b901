"""Runners: the same per-meter-group core driven by a local process pool (detect/engine.py),
Spark (spark.py) or the stream engine."""
