"""Errors a user can act on. Every error wattwatch raises on purpose is a :class:`WattwatchError`;
the message says what is wrong, where (file, line, field, meter) and what to do."""

from __future__ import annotations


class WattwatchError(Exception):
    """Base of wattwatch's own errors."""


class InputError(WattwatchError, ValueError):
    """Telemetry that cannot be read or mapped onto the canonical schema."""


class ConfigError(WattwatchError, ValueError):
    """A detector, engine or mapping configuration that is not valid."""


class StateError(WattwatchError, RuntimeError):
    """Meter state or a fleet model that is missing, damaged or of another version."""


class StoreError(WattwatchError, RuntimeError):
    """The store file cannot be opened, is not a wattwatch store, or is of an incompatible version."""


class CommittedError(StoreError):
    """An operation's change was committed to the store, and a later step of it failed (the
    CHECKPOINT after a compaction, or a COMMIT that raised after committing, as DuckDB's does for
    a Ctrl-C during it): the change is kept. ``result``: what was committed (the operation's usual
    result: ``Store.compact``'s dict, ``Store.ingest``'s IngestCounts); ``step``: what failed."""

    def __init__(self, message: str, result, step: str):
        super().__init__(message)
        self.result = result
        self.step = step
