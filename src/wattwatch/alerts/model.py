"""The alert (SPEC §3): meter, span, code, severity, score, detector, message, evidence, action."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "critical")


def _plain(o):
    """numpy scalars and arrays in evidence become plain JSON values."""
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


@dataclass
class Alert:
    meter_id: str
    start: str
    end: str
    code: str
    severity: str
    score: float
    detector: str
    message: str
    evidence: dict = field(default_factory=dict)
    action: str = ""

    @property
    def id(self) -> str:
        """Stable identity: the same fault found again (same meter, code, detector, start) is
        the same alert, so re-running detection never duplicates it."""
        key = f"{self.meter_id}|{self.code}|{self.detector}|{self.start}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["id"] = self.id
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=_plain)

    def log_line(self) -> str:
        """``<time> <code> <meter> <message>``."""
        return f"{self.start} {self.code} {self.meter_id} {self.message}"

    @classmethod
    def from_dict(cls, d: dict) -> "Alert":
        fields = {k: d[k] for k in ("meter_id", "start", "end", "code", "severity", "score", "detector", "message")}
        return cls(**fields, evidence=d.get("evidence") or {}, action=d.get("action", ""))


def read_jsonl(path) -> list[Alert]:
    out = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Alert.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {n}: not an alert ({exc})") from exc
    return out
