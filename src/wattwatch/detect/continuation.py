"""One lasting change, one alert (SPEC §3): a later consumption alert that continues an earlier one.

A lasting change of a meter's consumption is seen by two detectors at two moments:
``seasonal_profile``'s reading or 24-h evidence on its first day (``WARN_CONSUMPTION_ANOMALY``),
``baseline_macd``'s fast and slow averages hours later (``WARN_BASELINE_DEVIATION``, "-100 % below
its baseline" after a meter went dead). Each detector's own post-rules make one alert of its own
evidence; this step, after them and across detectors, makes the later alert the continuation of the
earlier one: one alert, the earlier's id (meter, code, detector, start), its end the later end, its
evidence naming the detectors that agreed and each member's own span and message.

The rule, per meter (every number configurable through :class:`ContinuationConfig`):

- a *follower* is an alert of a ``follow_codes`` code (``WARN_BASELINE_DEVIATION``); a *head* one of
  a ``head_codes`` code (``WARN_CONSUMPTION_ANOMALY``) from another detector;
- both say the same change (:func:`change`): ``dead`` (readings at zero; a deviation of
  ``dead_share`` or more below the baseline), ``down`` or ``up`` (the consumption level off its
  profile or baseline that way). Opposite directions never merge, nor a dead meter with a partial
  drop (a dead channel or lost supply is not an under-registration: different checks on site);
  evidence of a single reading or a short spike or drop (a glitch) and of a frozen register
  (``flat_line``: stale data, check the logger) say no lasting change of consumption and never merge;
  nor does any other code (a sensor fault, packet loss, an outage: each its own action);
- the follower begins at or after the head's start and at most ``within_s`` after the head's end;
- a head takes at most one follower per detector (a detector's own post-rules decided that two of
  its alerts are two; a head's own detector gives no follower: a head code is never a follower);
  a follower continues the earliest head it can.

The decision reads only the head, which begins first: a stream (:class:`Continuations`, carried
from step to step) gives what a batch gives (:func:`continued`) when the head's alert is given no
later than the follower's (seasonal_profile's evidence is causal and final within a few readings;
baseline_macd waits for its hour and its averages), and the merged alert is upserted under the
head's id as either member grows.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.codes import SEVERITIES

#: Evidence kinds that say a lasting change of consumption, and which way: ``seasonal_profile``'s
#: ``kind`` (``drop``/``spike``: a short drop or spike of a few readings; ``flat_line``: a frozen
#: register: not a change of consumption).
_ZERO_KINDS = ("zero_reading", "zero_run")
_LEVEL_KINDS = ("unusual_day", "reading_run")


@dataclass(frozen=True)
class ContinuationConfig:
    enabled: bool = True
    within_s: float = 86400.0          # a follower begins at most this long after the head's end
    dead_share: float = 0.9            # a deviation this far below the baseline (or more) is a dead meter
    head_codes: tuple[str, ...] = ("WARN_CONSUMPTION_ANOMALY",)
    follow_codes: tuple[str, ...] = ("WARN_BASELINE_DEVIATION",)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ContinuationConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"continuation: unknown setting(s) {unknown} (known: {sorted(cls.__dataclass_fields__)})")
        for k in ("head_codes", "follow_codes"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def change(a: Alert, cfg: ContinuationConfig = ContinuationConfig()) -> str | None:
    """The lasting change of consumption ``a``'s evidence says: ``"dead"``, ``"down"``, ``"up"``,
    or None (no lasting change: a point, a frozen register, no direction). Read from the evidence
    alone; which codes take part is :class:`Continuations`'s question."""
    ev = a.evidence or {}
    kind = ev.get("kind")
    if kind in _ZERO_KINDS:
        return "dead"
    if kind in _LEVEL_KINDS:
        v, e = _num(ev.get("value")), _num(ev.get("expected"))
        if v is None or e is None or v == e:
            return None
        return "up" if v > e else "down"
    if kind is not None:
        return None   # a point (spike, drop), a frozen register: no lasting change
    dev = _num(ev.get("deviation"))
    if dev is None:
        m = _num(ev.get("macd"))
        if m is None or m == 0:
            return None
        return "up" if m > 0 else "down"
    if dev <= -cfg.dead_share:
        return "dead"
    if dev == 0:
        return None
    return "up" if dev > 0 else "down"


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _t(s: str) -> float:
    return pd.Timestamp(s).timestamp()


class _Event:
    """A head and its followers (latest version of each)."""

    def __init__(self, head: Alert, side: str):
        self.head = head
        self.side = side
        self.followers: dict[str, Alert] = {}   # follower detector -> its latest version

    @property
    def end_t(self) -> float:
        return max(_t(a.end) for a in (self.head, *self.followers.values()))

    def merged(self) -> Alert:
        if not self.followers:
            return self.head
        members = sorted([self.head, *self.followers.values()], key=lambda a: (a.start, a.detector))
        a = copy.copy(self.head)
        a.end = max((m.end for m in members), key=_t)
        scores = [m.score for m in members if m.score is not None and m.score == m.score]
        a.score = max(scores) if scores else self.head.score
        a.severity = max((m.severity for m in members), key=SEVERITIES.index)
        later = [m for m in members if m is not self.head]
        a.message = self.head.message + "".join(f"; continued by {m.detector} from {m.start}: {m.message}"
                                                for m in later)
        a.evidence = {**self.head.evidence,
                      "continued": {"change": self.side, "detectors": [m.detector for m in members],
                                    "alerts": [{"id": m.id, "detector": m.detector, "code": m.code, "start": m.start,
                                                "end": m.end, "severity": m.severity, "score": m.score,
                                                "message": m.message} for m in members]}}
        return a


class Continuations:
    """The post-step carried from step to step (a stream) or run once (a batch): alerts in
    (upserts: new or grown versions, any detector), alerts out (a follower's versions become its
    head's merged version; every other alert as it came)."""

    def __init__(self, config: ContinuationConfig | None = None):
        self.config = config or ContinuationConfig()
        self.events: dict[str, _Event] = {}            # head id -> event
        self.by_meter: dict[str, list[str]] = {}       # meter -> its heads' ids, by start
        self.head_of: dict[str, str] = {}              # follower id -> head id
        self.alone: dict[str, tuple[str, float, str]] = {}  # followers given out alone (never re-headed) -> meter, start, detector
        self.latest: dict[str, float] = {}             # meter -> the latest start it has given

    def remember(self, alerts: list[Alert]) -> None:
        """Take back what an earlier run gave (the store's alerts of these codes, as written:
        a continued head's members from its ``evidence.continued``), giving nothing: a restarted
        stream continues the heads its last run wrote, and never re-keys a follower it wrote alone."""
        cfg = self.config
        for a in sorted(alerts, key=lambda a: _t(a.start)):
            if (a.evidence or {}).get("provisional") or (a.evidence or {}).get("withdrawn"):
                continue   # not given by this step: its final version is (or none)
            c = (a.evidence or {}).get("continued")
            if a.code in cfg.head_codes and isinstance(c, dict) and c.get("alerts"):
                m0, *rest = c["alerts"]
                ev = {k: v for k, v in a.evidence.items() if k != "continued"}
                head = Alert(a.meter_id, m0["start"], m0["end"], a.code, m0["severity"], m0["score"], a.detector,
                             m0["message"], ev, a.action, a.status)
                e = _Event(head, c["change"])
                for m in rest:
                    if m.get("pending"):   # (pf) a provisional follower: not final, not this carry's
                        continue
                    f = _member(a.meter_id, m)
                    e.followers[f.detector] = f
                    self.head_of[f.id] = head.id
            elif a.code in cfg.head_codes and change(a, cfg) is not None:
                e = _Event(a, change(a, cfg))
            else:
                if a.code in cfg.follow_codes:
                    self.alone[a.id] = (a.meter_id, _t(a.start), a.detector)
                continue
            self.events[e.head.id] = e
            self.by_meter.setdefault(a.meter_id, []).append(e.head.id)
        for ids in self.by_meter.values():
            ids.sort(key=lambda i: _t(self.events[i].head.start))

    def head(self, alert_id: str) -> str:
        """The id under which ``alert_id``'s alert is given (its head's, if it continues one)."""
        return self.head_of.get(alert_id, alert_id)

    def open_ids(self, ids) -> set[str]:
        """Open ids as given out: a follower open keeps its head open."""
        return {self.head(i) for i in ids}

    def take(self, alerts: list[Alert]) -> list[Alert]:
        cfg = self.config
        if not cfg.enabled or not alerts:
            return list(alerts)
        out: dict[str, Alert] = {}
        order: list[str] = []

        def give(a: Alert) -> None:
            if a.id not in out:
                order.append(a.id)
            out[a.id] = a

        # Heads first, by start, then followers by start: a follower in the same step as its head
        # finds it (the order within a step is not the batch's question).
        ranked = sorted(alerts, key=lambda a: (a.code not in cfg.head_codes, a.meter_id, _t(a.start), a.detector))
        for a in ranked:
            side = change(a, cfg)
            if a.id in self.events:                       # a head grows
                ev = self.events[a.id]
                ev.head = a
                # (the side its latest version says, which a batch reads; a follower taken under an
                # earlier side stays taken: the residual way a stream can differ, not seen here)
                ev.side = side or ev.side
                give(ev.merged())
                continue
            if a.id in self.head_of:                      # a follower grows
                ev = self.events[self.head_of[a.id]]
                ev.followers[a.detector] = a
                give(ev.merged())
                continue
            if a.code in cfg.head_codes and side is not None:
                self.events[a.id] = _Event(a, side)
                ids = self.by_meter.setdefault(a.meter_id, [])
                ids.append(a.id)
                ids.sort(key=lambda i: _t(self.events[i].head.start))
                give(a)
                continue
            if a.code in cfg.follow_codes and side is not None and a.id not in self.alone:
                ev = self._head_for(a, side)
                if ev is not None:
                    ev.followers[a.detector] = a
                    self.head_of[a.id] = ev.head.id
                    give(ev.merged())
                    continue
                self.alone[a.id] = (a.meter_id, _t(a.start), a.detector)
            give(a)
        self._prune(alerts)
        return [out[i] for i in order]

    #: A head (with its followers) is forgotten once its meter has given an alert that begins this
    #: long past the head's end plus ``within_s``: no alert of it grows that far back any more.
    FORGET_S = 30 * 86400.0

    def _prune(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self.latest[a.meter_id] = max(self.latest.get(a.meter_id, -math.inf), _t(a.start))
        horizon = self.config.within_s + self.FORGET_S
        for m in {a.meter_id for a in alerts}:
            now = self.latest[m]
            ids = self.by_meter.get(m, [])
            old = [i for i in ids if self.events[i].end_t + horizon < now]
            for i in old:
                ev = self.events.pop(i)
                for f in ev.followers.values():
                    self.head_of.pop(f.id, None)
            if old:
                self.by_meter[m] = [i for i in ids if i in self.events]
        for i in [i for i, (m, t0, _) in self.alone.items() if t0 + horizon < self.latest.get(m, t0)]:
            del self.alone[i]

    def rewind(self, since: dict[str, dict[str, float]]) -> list[Alert]:
        """(xd2) A re-judging of meters (a stream's late readings, a reset: ``rejudge.run``) finds
        again every alert of a detector that begins at or after where its post-rules restarted
        (``since``: meter -> detector -> epoch s; -inf: the whole history) and no other: what this
        carry took of those is forgotten, so the re-judged alerts are taken afresh as a batch
        takes them (a head the re-judging withdrew or turned, xd/rxd's residual, no longer keeps
        its follower; a follower given alone is re-keyed to a head found since). Returns the
        versions to take again with the re-judged alerts: a kept head that lost a follower (its
        own or merged version is given again) and a kept follower whose head was forgotten (given
        alone, or continuing another head)."""
        again: dict[str, Alert] = {}

        def redone(m: str, a: Alert) -> bool:
            return _t(a.start) >= since[m].get(a.detector, -math.inf)

        for m in [m for m in since if m in self.by_meter]:
            for hid in list(self.by_meter[m]):
                ev = self.events[hid]
                lost = [d for d, f in ev.followers.items() if redone(m, f)]
                for d in lost:
                    self.head_of.pop(ev.followers.pop(d).id, None)
                if redone(m, ev.head):
                    del self.events[hid]
                    self.by_meter[m].remove(hid)
                    for f in ev.followers.values():
                        self.head_of.pop(f.id, None)
                        again[f.id] = f
                elif lost:
                    again[hid] = ev.head
        for i in [i for i, (m, t0, d) in self.alone.items() if m in since and t0 >= since[m].get(d, -math.inf)]:
            del self.alone[i]
        return list(again.values())

    def pending(self, alerts: list[Alert], keep: dict[str, Alert] | None = None) -> tuple[list[Alert], dict[str, str]]:
        """(pf) A stream's provisional alerts (:attr:`StreamConfig.provisional`: written before the
        final verdicts of long-horizon rules), taken as the final ones will be, on a copy of this
        carry (which holds the final alerts only and is left as it was): a provisional follower
        that continues a head (final, or provisional itself) is given as the head's merged version,
        under the head's id, never under its own (issues 14/16: one change, one alert, live). A
        member not final yet is marked ``pending`` in ``evidence.continued.alerts``. Returns the
        versions (a head's merged one in place of its own) and follower id -> head id.

        ``keep`` (follower id -> its head's own version): the heads provisional followers were given
        under at the last judgement of their meters. Such a follower that finds no head now stays
        under it (while it is provisional): a head's final version may lag its provisional one
        (the final judgement reaches fewer of its readings: a "spike" of 30 min that grows into the
        reading run it was provisionally, seed 7 at 15 min M-00103); the follower's final verdict
        decides (the final carry gives it alone if the head never becomes one)."""
        if not self.config.enabled or not alerts:
            return list(alerts), {}
        fork = Continuations(self.config)
        fork.by_meter = {m: list(ids) for m, ids in self.by_meter.items()}
        fork.head_of, fork.alone, fork.latest = dict(self.head_of), dict(self.alone), dict(self.latest)
        for i, ev in self.events.items():
            e = _Event(ev.head, ev.side)
            e.followers = dict(ev.followers)
            fork.events[i] = e
        out = fork.take(alerts)
        ids = {a.id for a in alerts}
        taken = {f: h for f, h in fork.head_of.items() if f in ids and f not in self.head_of}
        for k, a in enumerate(out):
            h = (keep or {}).get(a.id)
            side = change(a, self.config)
            if h is None or a.id in taken or h.meter_id != a.meter_id or side is None:
                continue
            e = _Event(h, side)
            e.followers[a.detector] = a
            out[k] = e.merged()
            taken[a.id] = h.id
        if taken:
            heads = set(taken.values())
            merged = {a.id for a in out if a.id in heads and "continued" in (a.evidence or {})}
            out = [a for a in out if a.id not in merged or "continued" in (a.evidence or {})]   # (its own version)
            marked = []
            for a in out:
                c = (a.evidence or {}).get("continued")
                if c and a.id in heads:
                    c = {**c, "alerts": [{**m, "pending": True} if m["id"] in ids else m for m in c["alerts"]]}
                    a = copy.copy(a)
                    a.evidence = {**a.evidence, "continued": c}
                marked.append(a)
            out = marked
        return out, taken

    def _head_for(self, a: Alert, side: str) -> _Event | None:
        t0 = _t(a.start)
        for hid in self.by_meter.get(a.meter_id, ()):
            ev = self.events[hid]
            if (ev.side == side and a.detector not in ev.followers
                    and _t(ev.head.start) <= t0 <= ev.end_t + self.config.within_s):
                return ev
        return None


def own(a: Alert) -> Alert:
    """A head's own version from its merged one (``evidence.continued``'s first member); ``a`` if
    it continues nothing."""
    c = (a.evidence or {}).get("continued")
    if not isinstance(c, dict) or not c.get("alerts"):
        return a
    m0 = c["alerts"][0]
    ev = {k: v for k, v in a.evidence.items() if k != "continued"}
    return Alert(a.meter_id, m0["start"], m0["end"], a.code, m0["severity"], m0["score"], a.detector, m0["message"], ev,
                 a.action, a.status)


def _member(meter_id: str, m: dict) -> Alert:
    """A follower as ``evidence.continued.alerts`` keeps it."""
    return Alert(meter_id, m["start"], m["end"], m["code"], m["severity"], m["score"], m["detector"], m["message"], {})


def final_part(a: Alert) -> Alert:
    """(rpf) ``a`` without its members not final yet (``pending``: :meth:`Continuations.pending`):
    the merged version of its head and its final followers; ``a`` if nothing in it is pending."""
    c = (a.evidence or {}).get("continued")
    if not isinstance(c, dict) or not any(m.get("pending") for m in c.get("alerts") or []):
        return a
    e = _Event(own(a), c["change"])
    for m in c["alerts"][1:]:
        if not m.get("pending"):
            e.followers[m["detector"]] = _member(a.meter_id, m)
    return e.merged()


def follower_starts(alerts: list[Alert], config: ContinuationConfig | None = None) -> dict[str, float]:
    """(xd2) Per meter, the earliest start (epoch s) of an alert that may continue another (a
    ``follow_codes`` alert given alone, or a member of a continued alert). A window run whose
    post-rules restart at ``c`` gives the whole history's continuation when no such alert begins
    before ``c`` + ``within_s``: every head such a later follower can continue ends after ``c``
    (found whole, or running across ``c``: traced), and so does every follower that took one."""
    cfg = config or ContinuationConfig()
    out: dict[str, float] = {}
    for a in alerts:
        starts = []
        if a.code in cfg.follow_codes:
            starts.append(a.start)
        c = (a.evidence or {}).get("continued")
        if isinstance(c, dict):
            starts += [m.get("start") for m in c.get("alerts") or [] if m.get("code") in cfg.follow_codes]
        for s in starts:
            if s:
                out[a.meter_id] = min(out.get(a.meter_id, math.inf), _t(s))
    return out


def continued(alerts: list[Alert], config: ContinuationConfig | None = None,
              open_ids: set[str] | None = None) -> tuple[list[Alert], set[str]]:
    """A batch's alerts (every alert of its meters, final) with followers merged into their heads;
    and its open ids as given out. The same as a stream that gives each head no later than its
    follower (:class:`Continuations`)."""
    c = Continuations(config)
    out = c.take(alerts)
    return out, c.open_ids(open_ids or set())
