"""The time-series store (embedded DuckDB)."""

from wattwatch.store.duck import DEFAULT_DB, CommittedError, IngestCounts, Store, StoreError

__all__ = ["DEFAULT_DB", "CommittedError", "IngestCounts", "Store", "StoreError"]
