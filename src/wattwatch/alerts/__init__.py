"""One alert model: JSONL, a human log line, and a lifecycle in the store."""

from wattwatch.alerts.model import Alert

__all__ = ["Alert"]
