"""Fleet scoring: per-POD-per-period features, cross-meter detectors and energy balance (issue 15).

``readers`` turns telemetry files (and the nested smart-meter JSON of Italian public-lighting
platforms) into one canonical fleet frame; ``features`` computes one row per POD and period on
pandas or Spark with the same numbers; ``run`` orchestrates ``wattwatch fleet``. Nothing heavy is
imported here, so ``import wattwatch.fleet`` stays fast and pyspark stays optional.
"""
