"""The alert (SPEC §3): meter, span, code, severity, score, detector, message, evidence, action."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from wattwatch.jsonsafe import finite
from wattwatch.userfile import read_text

SEVERITIES = ("info", "warning", "critical")


def _plain(o):
    """numpy scalars and arrays in evidence become plain JSON values."""
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)]}
_CONTROL.update({0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x5c: "\\\\", 0x2028: "\\u2028", 0x2029: "\\u2029",
                 0x85: "\\x85"})


def log_safe(text: str) -> str:
    """``text`` with control characters, line separators and backslashes escaped, so that it is
    always one line of a log and cannot be taken for another entry or a terminal command."""
    return text.translate(_CONTROL)


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
    status: str = "open"

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
        """One line of strict JSON (a NaN or infinite number in the evidence is ``null``)."""
        try:
            return json.dumps(self.to_dict(), ensure_ascii=False, default=_plain, allow_nan=False)
        except ValueError:
            return json.dumps(finite(json.loads(json.dumps(self.to_dict(), default=_plain))), ensure_ascii=False)

    def log_line(self) -> str:
        """``<start> <code> <meter> <message> [<severity>, until <end>, id <id>; action: <action>]``
        on one line, whatever the text (SPEC's ``<time> <code> <meter> <message>``, then what one
        needs to act: ``wattwatch alerts ack <id>``). Control characters (a newline in a meter id
        could forge a log line) are written as escapes (``\\n``, ``\\x1b``)."""
        head = " ".join(log_safe(str(x)) for x in (self.start, self.code, self.meter_id, self.message))
        tail = f"{self.severity}, until {self.end}, id {self.id}"
        if self.action:
            tail += f"; action: {self.action}"
        return f"{head} [{log_safe(tail)}]"

    @classmethod
    def from_dict(cls, d: dict) -> "Alert":
        fields = {k: d[k] for k in ("meter_id", "start", "end", "code", "severity", "score", "detector", "message")}
        return cls(**fields, evidence=d.get("evidence") or {}, action=d.get("action") or "",
                   status=d.get("status") or "open")


def iso(t) -> str | None:
    """A time as the output model writes it: ISO-8601 UTC to the millisecond with ``Z``."""
    import pandas as pd

    if t is None or t is pd.NaT or (isinstance(t, float) and t != t):
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(r: dict) -> dict:
    """An alert kept in the store (a row of ``alerts``) in the output model of ``alerts.jsonl``:
    the same fields, times ``…Z``, evidence an object, the stored id and status (plus the note)."""
    ev = r.get("evidence")
    if isinstance(ev, str):
        try:
            ev = json.loads(ev)
        except json.JSONDecodeError:
            ev = {"text": ev}
    a = Alert(meter_id=r["meter_id"], start=iso(r["start"]), end=iso(r["end"]), code=r["code"],
              severity=r["severity"], score=None if r["score"] != r["score"] else float(r["score"]),
              detector=r["detector"], message=r["message"], evidence=ev if isinstance(ev, dict) else {},
              action=r.get("action") or "", status=r.get("status") or "open")
    note = r.get("note")
    return {**a.to_dict(), "id": r["id"], "note": None if note is None or note != note else note}


def read_jsonl(path) -> list[Alert]:
    """Alerts from a JSON Lines file; ``ValueError`` naming the file, line and field otherwise."""
    import pandas as pd

    text = read_text(path, "alerts file", ValueError, article="an", expect="expected JSON Lines alerts")
    out = []
    # Lines as a text-mode file gives them (universal newlines), not str.splitlines (which also
    # splits at U+2028 and other breaks a JSON string may hold).
    for n, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: line {n}: not JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: line {n}: not an alert (expected a JSON object)")
        missing = sorted({"meter_id", "start", "end", "code", "severity", "score", "detector", "message"} - set(d))
        if missing:
            raise ValueError(f"{path}: line {n}: not an alert (missing {missing})")
        for k in ("meter_id", "code", "detector", "message", "start", "end"):
            if not isinstance(d[k], str):
                raise ValueError(f"{path}: line {n}: {k} must be a string, got {d[k]!r}")
        for k in ("start", "end"):
            try:
                if pd.Timestamp(d[k]) is pd.NaT:
                    raise ValueError
            except (ValueError, TypeError, OverflowError):
                raise ValueError(f"{path}: line {n}: {k} {d[k]!r} is not a time") from None
        if d.get("evidence") is not None and not isinstance(d["evidence"], dict):
            raise ValueError(f"{path}: line {n}: evidence must be an object")
        out.append(Alert.from_dict(d))
    return out
