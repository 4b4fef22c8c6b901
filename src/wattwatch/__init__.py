"""wattwatch: find what is wrong in electrical telemetry.

Importing the package is cheap: stages are imported from their own modules
(``wattwatch.ingest``, ``wattwatch.store``, ``wattwatch.sim``, ...) when needed.
"""

__version__ = "0.1.0"
