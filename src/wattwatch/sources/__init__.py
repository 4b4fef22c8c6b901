"""Live inputs for ``wattwatch watch``: see :mod:`wattwatch.sources.base` for the interface."""

from __future__ import annotations

from pathlib import Path

from wattwatch.sources.base import Batch, Poller, Source

KINDS = ("replay", "mqtt")


def build(spec: dict, where: str = "[[sources]]", root: Path | None = None) -> Source:
    """A source from one ``[[sources]]`` table of a site config (ValueError naming the key)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a table, got {type(spec).__name__}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    name = spec.pop("name", None) or kind
    if kind not in KINDS:
        raise ValueError(f"{where}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: name must be text")
    try:
        if kind == "replay":
            from wattwatch.sources.replay import ReplaySource

            path = spec.pop("path", None)
            if not isinstance(path, str):
                raise ValueError("path (the telemetry file to replay) is required")
            p = Path(path)
            if root is not None and not p.is_absolute():
                p = root / p
            if not p.exists():
                raise ValueError(f"path {p}: no such file")
            _only(spec, {"speed", "cycle_s", "mapping"})
            mapping = spec.get("mapping")
            if mapping and root is not None and not Path(mapping).is_absolute():
                mapping = str(root / mapping)
            return ReplaySource(name, p, speed=float(spec.get("speed", 0.0)), cycle_s=spec.get("cycle_s"),
                                mapping=mapping)
        from wattwatch.sources.mqtt import MqttSource

        _only(spec, {"host", "port", "topics", "qos", "meter", "meters", "fields", "scale", "client_id", "username",
                     "password", "batch_s", "keepalive"})
        return MqttSource(name, **spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} {name!r}: {exc}") from None


def _only(spec: dict, keys: set) -> None:
    unknown = set(spec) - keys
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(keys))}")


__all__ = ["Batch", "Poller", "Source", "build", "KINDS"]
