"""One meter group through the detection core, with failures isolated; results merged the same way
by every runner (the local process pool, Spark), so that they give the same DetectionResult.

:func:`judge_group` runs :func:`wattwatch.detect.core.run` on a group of meters. The core already
isolates a detector that raises while scoring (``Result.failed``); when the core call itself raises
(a detector's alert description, a state note, the post-rules), each meter of the group is retried
alone, and a meter that still fails is judged by the fallback set (detectors whose names are in
``registry.FALLBACK_DETECTORS``: the physics rules, without the learned stage) and named in a
notice. The run goes on.

:class:`Merge` folds group outcomes into a :class:`~wattwatch.detect.engine.DetectionResult`
independently of how the meters were grouped: notices de-duplicated and sorted, the per-detector
notices (skipped, failed, fallback) built once from every group's data, alerts and scores sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.detect import core
from wattwatch.detect.frame import meter_names, prepare, seg_bounds
from wattwatch.detect.registry import FALLBACK_DETECTORS


@dataclass
class Outcome:
    """What one group gives back (plain data: it crosses process and Spark boundaries)."""

    alerts: list[Alert] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    open_ids: set[str] = field(default_factory=set)
    readings: int = 0
    scores: pd.DataFrame | None = None
    skipped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    failed: dict[str, dict[str, str]] = field(default_factory=dict)
    unclean: set[str] = field(default_factory=set)
    # meters the core failed on even alone -> (the error, what judged them instead)
    fallback: dict[str, tuple[str, str]] = field(default_factory=dict)


def scores_frame(res: core.Result) -> pd.DataFrame:
    """Exact, final per-reading scores of every detector (NaN where it cannot judge)."""
    df = res.frame
    out = pd.DataFrame({"meter_id": df["meter_id"], "ts": df["ts"]})
    for j in res.judged:
        out[j.det.name] = np.where(j.exact & j.final, j.scores, np.nan)
    return out


def _add(out: Outcome, res: core.Result, keep_scores: bool) -> None:
    out.alerts += res.alerts
    out.open_ids |= res.open_ids
    out.unclean |= res.unclean
    out.notices += [n for n in res.notices if n not in out.notices]
    for name, meters in res.skipped.items():
        out.skipped.setdefault(name, {}).update(meters)
    for name, meters in res.failed.items():
        out.failed.setdefault(name, {}).update(meters)
    if keep_scores:
        s = scores_frame(res)
        out.scores = s if out.scores is None else pd.concat([out.scores, s], ignore_index=True)


def judge_group(frame: pd.DataFrame, detectors: list, window: dict | None = None, keep_scores: bool = False,
                fallback: tuple[str, ...] = FALLBACK_DETECTORS) -> Outcome:
    """The core on one group of meters (``frame`` canonical or prepared; ``detectors`` fitted);
    ``window``: :func:`core.run`'s per-meter keyword arguments."""
    part = prepare(frame)
    out = Outcome(readings=len(part))
    try:
        _add(out, core.run(part, detectors, **(window or {})), keep_scores)
        return out
    except Exception:  # noqa: BLE001 - one failing meter must not stop the run: retry them alone
        pass
    seg = part["_seg"].to_numpy()
    names = [str(m) for m in meter_names(part)]
    backup = [d for d in detectors if d.name in fallback]
    for k, (a, b) in enumerate(zip(*seg_bounds(seg))):
        one = prepare(part.iloc[a:b])
        try:
            _add(out, core.run(one, detectors, **(window or {})), keep_scores)
            continue
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}"
        try:
            if not backup:
                raise RuntimeError("no detector of the fallback set is in the run")
            _add(out, core.run(one, backup, **(window or {})), keep_scores)
            out.fallback[names[k]] = (error, "the fallback set (" + ", ".join(d.name for d in backup) + ")")
        except Exception as exc2:  # noqa: BLE001
            out.fallback[names[k]] = (error, f"nothing (the fallback set failed too: {type(exc2).__name__}: {exc2})")
    return out


def fallback_notices(fallback: dict[str, tuple[str, str]]) -> list[str]:
    """One notice per meter the core failed on (there are few: a failure of the whole core)."""
    return [f"meter {m}: the detection core failed on it ({err}); it was judged by {what} instead"
            for m, (err, what) in sorted(fallback.items())]


class Merge:
    """Group outcomes into ``result`` (a DetectionResult), the same whatever the grouping."""

    def __init__(self, result, keep_scores: bool = False, continuation=None):
        self.result = result
        # (xd) the cross-detector continuation step (a ContinuationConfig; None: off), per meter:
        # a group holds whole meters, so it is the same whatever the grouping
        self.continuation = continuation
        self.keep_scores = keep_scores
        self.notices: set[str] = set()
        self.skipped: dict[str, dict[str, list[str]]] = {}
        self.failed: dict[str, dict[str, str]] = {}
        self.fallback: dict[str, tuple[str, str]] = {}
        self.scores: list[pd.DataFrame] = []

    def add(self, o: Outcome) -> None:
        r = self.result
        r.alerts += o.alerts
        r.open_ids |= o.open_ids
        r.unclean |= o.unclean
        r.readings += o.readings
        self.notices.update(o.notices)
        for name, meters in o.skipped.items():
            self.skipped.setdefault(name, {}).update(meters)
        for name, meters in o.failed.items():
            self.failed.setdefault(name, {}).update(meters)
        self.fallback.update(o.fallback)
        if o.scores is not None:
            self.scores.append(o.scores)

    def finish(self) -> None:
        r = self.result
        seen = set(r.notices)
        r.notices += sorted(n for n in self.notices if n not in seen)
        r.notices += core.skipped_notices(dict(sorted(self.skipped.items())))
        r.notices += core.failed_notices(dict(sorted(self.failed.items())))
        r.notices += fallback_notices(self.fallback)
        for name, meters in (*self.skipped.items(), *self.failed.items()):
            r.unjudged.setdefault(name, set()).update(meters)
        if self.fallback:
            r.unjudged.setdefault("*", set()).update(self.fallback)
        r.alerts.sort(key=lambda a: (a.meter_id, a.start, a.code, a.detector))
        if self.continuation is not None:
            from wattwatch.detect.continuation import continued

            r.alerts, r.open_ids = continued(r.alerts, self.continuation, r.open_ids)
            r.alerts.sort(key=lambda a: (a.meter_id, a.start, a.code, a.detector))
        if self.keep_scores:
            if self.scores:
                s = pd.concat(self.scores, ignore_index=True)
                s["meter_id"] = s["meter_id"].astype(str)
                r.scores = s.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
            else:
                r.scores = None
