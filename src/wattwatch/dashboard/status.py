"""A ``watch`` output for the dashboard's Live page: after every step, a small JSON file with the
engine's counters, readings per meter and the open alerts (``watch`` holds the store's write lock
while it runs, so the dashboard follows this file instead of the store)::

    [[sinks]]
    type = "status"
    path = "watch-status.json"      # relative to the site config
    open_limit = 200                # at most this many open alerts listed (the worst first)
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from wattwatch.atomicfile import write_text
from wattwatch.sinks import Output


class StatusFile(Output):
    kind = "status"

    def __init__(self, name: str, path: Path, open_limit: int = 200):
        super().__init__(name)
        self.path = Path(path)
        self.open_limit = int(open_limit)
        self.meters: dict[str, list] = {}      # meter -> [readings, last ts]

    def readings(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        g = frame.groupby("meter_id", observed=True)["ts"].agg(["size", "max"])
        for m, (n, last) in g.iterrows():
            cur = self.meters.setdefault(str(m), [0, None])
            cur[0] += int(n)
            cur[1] = pd.Timestamp(last).isoformat()
        self.counters["readings"] += len(frame)

    def alerts(self, report, engine) -> None:
        from wattwatch.codes import severity_rank

        # Alerts this run raised or grew that nobody has acknowledged or cleared; "ongoing": still growing.
        open_alerts = [a for a in engine.alerts.values() if a.status == "open"]
        open_alerts.sort(key=lambda a: (-severity_rank(a.severity), -a.score))
        doc = {"at": pd.Timestamp.now(tz="UTC").isoformat(), "counters": dict(engine.counters),
               "meters": [{"meter_id": m, "readings": n, "last": t} for m, (n, t) in sorted(self.meters.items())],
               "open": [{"id": a.id, "meter_id": a.meter_id, "code": a.code, "severity": a.severity,
                         "score": a.score, "start": a.start, "end": a.end, "ongoing": a.id in engine.open_ids,
                         "message": a.message}
                        for a in open_alerts[:self.open_limit]],
               "open_total": len(open_alerts)}
        # A reader never sees half a file. Rewritten after every step: no fsync (a power cut loses
        # at most a copy the next step writes again).
        write_text(self.path, json.dumps(doc, default=str), durable=False)
        self.counters["written"] += 1


def from_spec(name: str, spec: dict, root: Path | None) -> StatusFile:
    spec = dict(spec)
    path = spec.pop("path", None)
    limit = spec.pop("open_limit", 200)
    if spec:
        raise ValueError(f"unknown key(s) {', '.join(sorted(spec))} (keys: path, open_limit)")
    if not isinstance(path, str) or not path:
        raise ValueError("path must be a file name")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"open_limit must be a whole number >= 0, got {limit!r}")
    p = Path(path)
    return StatusFile(name, p if p.is_absolute() or root is None else Path(root) / p, limit)
