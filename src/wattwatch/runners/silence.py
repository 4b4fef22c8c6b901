"""The silence watch of ``wattwatch watch`` (issue 16): a meter or gateway that stops answering
gets an alert within minutes, *while* it is silent.

The detection core judges readings; a silent meter gives none, so the core's packet-loss rule can
only write the gap once the meter is heard again (25 min later at 1 min, 2 h at 5 min: docs/live-log.md
pkt). The watcher itself knows more:

- a **poller** (Modbus, SNMP: :class:`wattwatch.sources.base.Poller`) knows which of its meters gave no
  reading in each poll cycle (timeout, refused connection, exception response, a gateway backed
  off): per meter it keeps the lost polls in a row, the time of the first of them and of the last
  answer (``Poller.silence``);
- a **push** source (MQTT, tamper telemetry) knows only when each meter's readings arrived: a meter
  is silent once nothing came for ``cadences`` times its expected cadence (``expect_s`` of its
  source, or learned: the median gap between its last arrivals, after ``learn`` of them).

A meter is **silent** when (poller) ``lost_polls`` of its polls in a row are lost *and* it has not
answered for ``min_s`` (and at least ``lost_polls`` intervals), or (push) nothing arrived for
``max(min_s, cadences x cadence)``. Defaults: 3 lost polls, 120 s, 3 cadences. Why: one or two lost
polls are ordinary loss (the packet-loss rule judges their rate); a gateway or meter reboot, a
switch's spanning-tree reconvergence or a DHCP renewal is over within a minute or two, and paging a
facility team for those is noise; "gateway X stopped answering" is still said within ~2 minutes of
the last answer at a 1-60 s poll (3 polls at 5 min: 15 min).

Each silent meter gets one alert (a gateway that cannot be reached: one for the gateway, below):
code ``ALRM_PKT_LOSS_CRIT`` (a lost poll is a missing reading, SPEC §3), detector
``silence``, start = the first lost poll (push: the first reading that did not come), evidence
``kind = "silent"``, ``source``, ``lost`` (polls lost in a row / readings missed), ``since``,
``last_heard``, ``silent_s``, ``limit_s`` and, for Modbus, ``gateway``, ``unit`` and ``why`` (the
last lost poll's reason). Its score is ``1 - 0.5 ** (silent_s / limit_s)``: warning when it opens,
critical once silent three times the limit. It is updated while the meter stays silent (every
``update_s``, or when its severity changes) and ended (``evidence.ended``) by the first reading or
answer. It is written as a source's health alert (:meth:`StreamEngine.add_health`, as
``WARN_LINK_SLOW``): upserted at once, read back open from the store by a restarted watcher and
handed to this watch (:meth:`SilenceWatch.resume`), which goes on with it (same start, same id) or
ends it; so a restart neither duplicates nor loses it.

**The core's packet-loss alert is separate** (detector ``packet_loss``, another id): once the meter
is heard again the core judges the gap in its readings as ``detect`` would (stream == detect holds:
the silence alert never enters the stitcher). The silence alert is the live "it does not answer
now" and ends when it answers; the core's says afterwards what the readings lack.

Not watched: a meter never heard (no answer in this run and no reading in the store: a device not
commissioned yet, or a wrong address, which the source's own counters and log show), a meter whose
poll interval or expected cadence is above ``max_cadence_s`` (polled rarely: its silence is hours
long before it is evidence, the core's data gap covers it), a meter matching ``ignore``, and a
replay source (a file's gaps are data, judged by the core). A push meter is watched once its
cadence is learned (or its source's ``expect_s`` given); the engine's checkpoint keeps its cadence
and last arrival (:meth:`SilenceWatch.position`), so a restarted watcher watches it from its start.

**A lost outlet cleared by an operator** (le): an SNMP outlet its agent no longer lists while it answers
is alerted as a lost outlet (``evidence.lost_outlet``). Acknowledged, the alert goes on (someone has it
in hand; the outlet may come back). Cleared (``wattwatch alerts clear``: SPEC's lifecycle, open ->
acknowledged -> cleared), it is taken as removed for good: the alert ends (``evidence.retired``,
``ended_because``) and the outlet is not watched -- by this run or a restart (the engine hands the
watch the retired outlets with no reading after their end), also when it was cleared while no
watcher ran -- until its agent lists it again, when it is watched as any outlet heard. Retired only once
its agent answers without it, also across a restart (le2: one cleared while no watcher ran goes on at
the restart until then; its PDU may be down, or list it again). Before, it stayed
alerted until its meter was put in ``ignore`` by hand, for good (an outlet plugged in there later was
never watched). The config lists PDUs, not outlets: their table is the agent's, so the operator's
word on an alert, not a second list to keep in step, says an outlet is gone.

**A push source cut off from its broker** (status ``connecting``, ``reconnecting`` or ``refused``:
the broker down, unreachable or refusing the watcher) does not page its meters one by one: the
meters may well be publishing into the broker's queue (the watcher keeps its MQTT session), so
while it is down its meters are not judged silent. At the reconnect their clocks start again from
it (the queued readings arrive then); a meter still silent ``max(min_s, cadences x cadence)`` after
the reconnect is alerted, its evidence saying when it was last heard before the outage. Instead the
source gets one alert once it has been cut off for ``min_s``: ``meter_id`` ``source:NAME``, the same
code (its meters' readings are missing), detector ``silence``, ``evidence.kind = "source_down"``,
start = when the watch first saw it cut off, ``status`` (the source's: ``reconnecting``,
``refused: ...``), ``meters`` (its push meters waiting), ``down_s``, ``limit_s``; updated as a
meter's, ended at the reconnect (``reconnected``), read back by a restarted watcher as the meters'
are (same start, same id). Its ``why`` says the cause from the source's status: the broker's own
refusal reason (``refused: Not authorized``: bad credentials, not authorised), the connection
lost, or the broker not reached since the start; ``broker``, ``topics`` and ``mapped`` (the meters
its topic map names) say what it is configured to hear, and ``meters`` how many of its meters were
heard (absent when none was: a source down from the start has heard nothing yet, which is not "0
meters").

**A poller's gateway that cannot be reached** (Modbus/TCP or RTU-over-TCP gateway: connections
refused, unreachable, or no answer to the connection; an SNMP agent that answers none of its
requests, or refuses the credentials) does not page each meter behind it: the poller's own
connection state (``silence_links``; never a guess from its units going quiet together) says the
gateway is down, and while it is no meter behind it is *opened* silent (one already alerted stays
and ends at its answer). The gateway gets one alert once no unit behind it has answered for the
meters' limit: ``meter_id`` ``gateway:HOST:PORT/FRAMING`` (SNMP: ``agent:DEVICE``), the same code,
detector ``silence``, ``evidence.kind = "gateway_down"``, ``gateway``, ``link`` (gateway, agent),
``why`` (the connection's failure), ``units`` (each meter behind it and its unit id; an agent's own
meter and its outlets), ``since`` (its first failed connection), ``last_heard``, ``down_s``,
``silent_s``, ``limit_s``; scored, updated and read back by a restarted watcher as a meter's (same
start, same id). A unit behind it answering again ends it (``reconnected``; a TCP connection taken
again while no unit answers -- a gateway in a reboot loop, a lossy link -- does not: one alert for
the flaps, not one per reconnect) and each other meter behind it is judged from then -- one still
dead is alerted ``limit`` after it, saying when it was last heard. A
single dead unit behind a live gateway is a meter's alert as before. An action selects it with
``match = { detector = "silence", meter = ["gateway:*", "agent:*"] }``.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert, iso
from wattwatch.tomlfile import flag, number, only

log = logging.getLogger("wattwatch.watch")

_EPOCH = pd.Timestamp(0, tz="UTC")
CODE = "ALRM_PKT_LOSS_CRIT"
DETECTOR = "silence"
KIND = "silent"
SOURCE_KIND = "source_down"     # a push source cut off from its broker (one alert for the source)
SOURCE_PREFIX = "source:"       # its alert's meter_id: source:NAME
LINK_KIND = "gateway_down"      # a poller's gateway (Modbus) or agent (SNMP) that cannot be reached: one alert


@dataclass
class SilenceConfig:
    """``[silence]`` of a site config (see the module)."""

    enabled: bool = True
    lost_polls: int = 3
    min_s: float = 120.0
    cadences: float = 3.0
    max_cadence_s: float = 3600.0
    update_s: float = 60.0
    learn: int = 4
    expect_s: dict = field(default_factory=dict)   # push source name -> its meters' expected cadence (s)
    ignore: list = field(default_factory=list)     # meter globs never watched

    # (not a field) what from_dict asks of each number
    _BOUNDS = {"lost_polls": {"whole": True, "lo": 1}, "learn": {"whole": True, "lo": 1}, "min_s": {"lo": 0},
               "cadences": {"lo": 0, "lo_in": False}, "max_cadence_s": {"lo": 0}, "update_s": {"lo": 0}}

    @classmethod
    def from_dict(cls, d: dict | None) -> "SilenceConfig":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError("[silence]: must be a table")
        d = dict(d)
        only(d, set(cls.__dataclass_fields__), "[silence]")
        out = cls()
        for k, v in d.items():
            if k == "enabled":
                v = flag("[silence] enabled", v)
            elif k == "expect_s":
                if not isinstance(v, dict):
                    raise ValueError(f"[silence] expect_s: must be a table of source name = seconds (> 0), got {v!r}")
                v = {str(a): number(f"[silence] expect_s.{a}", b, lo=0, lo_in=False) for a, b in v.items()}
            elif k == "ignore":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise ValueError(f"[silence] ignore: must be a list of meter globs, got {v!r}")
            else:
                v = number(f"[silence] {k}", v, **cls._BOUNDS[k])
            setattr(out, k, v)
        return out


@dataclass
class _Push:
    last: float                                     # wall time (epoch s) of its last arrival
    gaps: deque = field(default_factory=lambda: deque(maxlen=16))
    before: float | None = None                     # (restored) its last arrival before the restart
    ts: float | None = None                         # its newest reading's time (epoch s)
    tgaps: deque = field(default_factory=lambda: deque(maxlen=16))   # between its readings' times

    def cadence(self, learn: int) -> float | None:
        """The larger of the median gap between its arrivals and between its readings' times: a
        backlog the broker delivers at once (a persistent session after a restart) arrives seconds
        apart but says its readings' cadence; a meter that sends 15 one-minute readings every 15 min
        arrives every 15 min."""
        got = [float(np.median(g)) for g in (self.gaps, self.tgaps) if len(g) >= learn - 1]
        return max(got) if got else None


def _is_push(source) -> bool:
    return not hasattr(source, "silence") and getattr(source, "watch_silence", True)


class SilenceWatch:
    """See the module. Used by the engine's thread only (:func:`wattwatch.runners.stream._work`);
    it reads the pollers' ``silence`` tables (written by the event loop's thread) as snapshots."""

    def __init__(self, cfg: SilenceConfig | None = None, clock=time.time, mono=None):
        self.cfg = cfg or SilenceConfig()
        self.clock = clock
        # A steady clock beside the wall clock: a wall-clock step (NTP setting the clock of a box
        # that booted without one, an operator's date) is not taken for silence (_jumped).
        self.mono = mono if mono is not None else (time.monotonic if clock is time.time else None)
        self._ref: tuple[float, float] | None = None
        self.started = clock()
        self.push: dict[tuple[str, str], _Push] = {}
        self.open: dict[tuple[str, str], dict] = {}     # (source, meter) -> the open alert's facts
        self.known: set[str] = set()                    # meters the store had readings of at start
        self.known_at: dict[str, float] = {}            # ... and their newest reading's time (epoch s)
        self.counters: Counter = Counter()
        self._out: dict[str, Alert] = {}
        # Push sources cut off from their broker: name -> {"since", "status", "alert": open facts or None}
        self.down: dict[str, dict] = {}
        # A poller's gateways (agents) its connection state says are down: (source, key) ->
        # {"since", "why", "units", "alert": open facts or None}; and the meters behind one that came
        # back, their silence counted from the reconnect: (source, meter) -> its wall time.
        self.links: dict[tuple[str, str], dict] = {}
        self.relinked: dict[tuple[str, str], float] = {}
        # (le) Lost outlets an operator cleared (taken as removed for good): (source, meter) -> when (wall
        # time; -inf: retired by an earlier run). Not watched until heard after it (listed again).
        self.retired: dict[tuple[str, str], float] = {}
        # The status (open, acknowledged, cleared) of an alert by id: the engine's (it sets this).
        self.status_of = lambda alert_id: None

    # ------------------------------------------------------------------ start / resume

    def resume(self, sources: list, stored: list, known=(), position: dict | None = None, retired=()) -> None:
        """At the start of a run: the meters the store has readings of (``known``: a configured
        polled meter of them is watched before its first answer of this run), and the open silence
        alerts an earlier run left (``stored``): each goes on (same start, same id) while its meter
        stays silent, or is ended by its first answer. One whose meter this site no longer polls,
        or with the watch turned off, is ended now (``evidence.ended_because``). (le) ``retired``: the
        (source, meter) of lost outlets an earlier run retired (cleared: :meth:`_retire`) and not heard
        since: not watched, until heard; a stored open one cleared meanwhile is retired now."""
        self.known = {str(m) for m in known}
        self.retired.update({(str(src), str(m)): -math.inf for src, m in retired})
        # (the engine hands its newest reading per meter, epoch us: a polled meter not heard in this
        # run says that as its last_heard, not nothing)
        self.known_at = {str(m): float(v) / 1e6 for m, v in known.items()} if isinstance(known, dict) else {}
        by = {s.name: s for s in sources}
        # The push meters the checkpoint had a cadence of: watched from this run's start (their
        # silence counted from it: a watcher down for an hour does not find every meter silent).
        for src, m, cad, last in (position or {}).get("push", []):
            s = by.get(src)
            if s is not None and _is_push(s) and cad:
                p = _Push(max(float(last), self.started), before=float(last))
                p.gaps.extend([float(cad)] * self.cfg.learn)
                self.push[(src, str(m))] = p
        # (lc) The table rows an SNMP source gave before (the store has their readings) are watched
        # from this run's start as its configured meters are: an outlet the agent stopped listing
        # while the watcher was down is a lost outlet, alerted, not silently forgotten.
        for s in sources:
            table, expect = getattr(s, "silence", None), getattr(s, "expect", None)
            if table is not None and expect is not None and getattr(s, "watch_silence", True):
                own = set(s.polled_meters())
                for m in sorted(self.known):
                    if m not in own and (s.name, m) not in self.retired and expect(m):
                        table.setdefault(m, (0, None, None))
        for a in stored:
            ev = a.evidence
            if a.detector == DETECTOR and ev.get("kind") == SOURCE_KIND and not ev.get("ended"):
                self._resume_source(a, by.get(ev.get("source")))
                continue
            if a.detector == DETECTOR and ev.get("kind") == LINK_KIND and not ev.get("ended"):
                self._resume_link(a, by.get(ev.get("source")))
                continue
            if a.detector != DETECTOR or ev.get("kind") != KIND or ev.get("ended"):
                continue
            s = by.get(ev.get("source"))
            if s is None:
                continue   # its source left the site config: the engine ends it (resume_sources)
            why = None
            if not self.cfg.enabled:
                why = "the silence watch is turned off ([silence] enabled = false)"
            elif (not s.polls(a.meter_id)) if hasattr(s, "polls") else \
                    (hasattr(s, "silence_facts") and a.meter_id not in set(s.polled_meters())):
                # (a Modbus source lists every meter it polls; an SNMP one names its tables' rows as they
                # come: lc -- its ``polls`` says whether a configured device's table names the meter)
                why = "the meter is no longer polled by this source"
            try:
                o = {"since": _epoch(a.start), "end": _epoch(a.end), "lost0": int(ev.get("lost", 0)),
                     "lost": int(ev.get("lost", 0)), "limit_s": float(ev["limit_s"]),
                     "cadence_s": ev.get("cadence_s"), "heard": _epoch(ev.get("last_heard")),
                     "facts": {k: ev[k] for k in ("gateway", "unit", "agent", "why", "lost_outlet") if k in ev},
                     "resumed": self.started, "written": self.started, "severity": a.severity, "id": a.id}
            except (KeyError, TypeError, ValueError):
                why = why or "the stored alert lacks what the silence watch needs to go on with it"
                o = None
            if why is not None:
                self._end_at_restart(a, why)
                continue
            # (le2) A lost outlet cleared while no watcher ran goes on as any stored open one: retired
            # by :meth:`check` at the first poll where its agent answers without it (le's rule while
            # running), not at the restart (le retired it here, before any poll: an outlet whose PDU
            # was down, or listed it again meanwhile, was taken as removed for good). Its stored
            # status stands until the engine's look-up says otherwise (``status_of``).
            o["stored_status"] = a.status
            self.open[(s.name, a.meter_id)] = o
            table = getattr(s, "silence", None)
            if table is not None:
                # (lc) A meter its source learns from its answers (an SNMP table's rows): watched from
                # this run's start, so that its alert goes on while the agent no longer lists it and
                # ends at its first answer (it stayed open for ever: nothing in this run named it).
                table.setdefault(a.meter_id, (0, None, None))
                if hasattr(s, "expect"):
                    s.expect(a.meter_id)   # (held with its agent's meters while the agent is down)
            if not hasattr(s, "silence"):   # a push meter: its clock goes on from what the alert says
                p = _Push(o["heard"] if o["heard"] is not None else o["since"])
                if o["cadence_s"]:
                    p.gaps.extend([float(o["cadence_s"])] * self.cfg.learn)
                self.push[(s.name, a.meter_id)] = p
                o["ref"] = p.last
            self.counters["resumed"] += 1

    def _end_at_restart(self, a: Alert, why: str) -> None:
        """A stored open alert the watch cannot go on with: its ended version, saying why."""
        log.warning("silence: open alert %s of %s ended at the restart: %s", a.id, a.meter_id, why)
        self._out[a.id] = Alert(**{**a.__dict__, "evidence": {**a.evidence, "ended": True, "ended_because": why}})
        self.counters["ended_at_restart"] += 1

    def _resume_source(self, a: Alert, s) -> None:
        """A stored open ``source_down`` alert: goes on (same start, same id) while its source is
        still cut off, ended at its reconnect (:meth:`_links`)."""
        if s is None:
            return   # its source left the site config: the engine ends it (resume_sources)
        ev = a.evidence
        why = None
        if not self.cfg.enabled:
            why = "the silence watch is turned off ([silence] enabled = false)"
        elif not _is_push(s):
            why = "the source is no longer a push source"
        try:
            o = {"since": _epoch(a.start), "end": _epoch(a.end), "limit_s": float(ev["limit_s"]),
                 "status": str(ev.get("status", "")), "meters": int(ev.get("meters", 0)),
                 "written": self.started, "severity": a.severity}
        except (KeyError, TypeError, ValueError):
            why = why or "the stored alert lacks what the silence watch needs to go on with it"
        if why is not None:
            self._end_at_restart(a, why)
            return
        o.update(_configured(s))   # (an ended version at the first check says its broker too)
        self.down[s.name] = {"since": o["since"], "status": o["status"], "alert": o}
        self.counters["resumed"] += 1

    def _resume_link(self, a: Alert, s) -> None:
        """A stored open ``gateway_down`` alert: goes on (same start, same id) while the gateway's
        connection is down (or not tried yet by this run), ended once it connects
        (:meth:`_poller_links`)."""
        if s is None:
            return   # its source left the site config: the engine ends it (resume_sources)
        ev = a.evidence
        key = str(ev.get("gateway", ""))
        links = s.silence_links() if hasattr(s, "silence_links") else {}
        why = None
        if not self.cfg.enabled:
            why = "the silence watch is turned off ([silence] enabled = false)"
        elif key not in links:
            why = "the gateway is no longer polled by this source"
        try:
            o = {"since": _epoch(a.start), "end": _epoch(a.end), "limit_s": float(ev["limit_s"]),
                 "heard": _epoch(ev.get("last_heard")), "why": str(ev.get("why", "")),
                 "label": a.meter_id.split(":")[0],
                 "units": [(str(u["meter_id"]), u.get("unit")) for u in ev.get("units", [])],
                 "written": self.started, "severity": a.severity}
        except (KeyError, TypeError, ValueError):
            why = why or "the stored alert lacks what the silence watch needs to go on with it"
            o = None
        if why is not None:
            self._end_at_restart(a, why)
            return
        self.links[(s.name, key)] = {"since": o["since"], "why": o["why"], "units": o["units"], "alert": o,
                                     "label": o["label"], "answerless": o["why"].startswith("connected, but")}
        self.counters["resumed"] += 1

    def _poller_links(self, s, table: dict, now: float, limit: float) -> set:
        """A poller's gateways (agents) whose connection is down, from its own connection state
        (``silence_links``: refused, unreachable, no answer to the connection; never inferred from
        its units' silence): the meters behind one are *held*: no meter alert opens for them (one
        already open stays and ends at its answer); the gateway gets one alert once no unit behind it
        has answered for ``limit`` (as a meter's). Connected again and a unit behind it answering:
        its alert ends and each meter behind it is judged from then (one still dead is alerted ``limit`` after it, its
        evidence saying when it was last heard). Returns the held meters."""
        get = getattr(s, "silence_links", None)
        links = get() if get is not None else {}
        held: set = set()
        for key, e in links.items():
            lk = (s.name, key)
            d = self.links.get(lk)
            members = [m for m, _ in e["units"]]
            if e["up"] is True and d is None and self._answerless(s, members, table, now, limit):
                # Connected, but no unit behind it answers (a serial gateway whose RS-485 side is dead,
                # a firmware hung above a live TCP stack): one cause, one alert, as a gateway that is down.
                why = self._facts(s, members[0]).get("why") or "no answer"
                d = self.links[lk] = {"since": min(table[m][1] for m in members), "units": e["units"],
                                      "why": f"connected, but none of the {len(members)} units behind it answers ({why})",
                                      "alert": None, "label": e.get("label", "gateway"), "answerless": True}
                self.counters["gateways_answerless"] += 1
            if e["up"] is False and d is None and self._silent_before(s, members, table, e["since"]):
                continue   # (its units fell silent well before: a connect that failed once among their lost polls)
            if e["up"] is False:
                if d is None:
                    d = self.links[lk] = {"since": e["since"] if e["since"] is not None else now, "why": e["why"],
                                          "units": e["units"], "alert": None, "label": e.get("label", "gateway")}
                    self.counters["gateways_down"] += 1
                else:   # (its units: the poller's now, and any an earlier version named -- an SNMP
                        # agent restarted while down knows its outlets only from a walk)
                    d["why"] = e["why"] or d.get("failed") or d["why"]
                    d.pop("failed", None)
                    d.pop("answerless", None)
                    d["units"] = list(e["units"]) + [u for u in d["units"] if u[0] not in {m for m, _ in e["units"]}]
                held.update(members)
                self._link_check(s, key, d, table, now, limit)
            elif e["up"] is True and d is not None:
                # Connected again is not answering again: a gateway in a reboot loop, or on a lossy
                # link, takes a TCP connection now and then and answers no unit. Its alert goes on
                # (one alert for the flaps, not one per reconnect) until a unit behind it answers.
                if not any(m in table and table[m][2] is not None and table[m][2] > d["since"] for m in members):
                    if not d.get("answerless"):
                        d.setdefault("failed", d["why"])
                        d["why"] = f"connected again, no unit behind it answers since ({d['failed'] or 'unreachable'} before)"
                    held.update(members)
                    self._link_check(s, key, d, table, now, limit)
                    continue
                del self.links[lk]
                for m in members:
                    if (s.name, m) not in self.open:
                        self.relinked[(s.name, m)] = now
                if d["alert"] is not None:
                    self._end_link(s, key, d, now)
                log.log(logging.WARNING if d["alert"] is not None else logging.INFO,
                        "silence: %s: gateway %s connected again after %.0f s", s.name, key, now - d["since"])
            elif d is not None:   # restarted with its alert open, not tried yet by this run: held still
                held.update(members)
        return held

    def _silent_before(self, s, members: list, table: dict, since: float | None) -> bool:
        """Every unit heard behind a gateway had stopped answering ``lost_polls`` polls before its
        connection first failed: that failure (a connect timed out once on a busy gateway or host,
        among the reconnects after their lost polls) is not why they are silent -- they are judged
        as before (their own alerts, or one for a gateway that answers none of them)."""
        if since is None:
            return False
        before = since - self.cfg.lost_polls * float(getattr(s, "interval_s", 0.0) or 0.0)
        heard = [table.get(m) for m in members if m in self.known or (m in table and table[m][2] is not None)]
        return bool(heard) and all(t is not None and t[1] is not None and t[1] < before for t in heard)

    def _answerless(self, s, members: list, table: dict, now: float, limit: float) -> bool:
        """A connected gateway none of whose units answers: every unit behind it lost its last
        ``lost_polls`` polls, none is alerted on its own already, and at least two that answered
        before (this run, or the store) have been quiet for the limit -- what each would be alerted
        for now, one by one. (A single unit: its own alert says it.)"""
        if not self.cfg.enabled or len(members) < 2:
            return False
        interval = float(getattr(s, "interval_s", 0.0) or 0.0)
        heard = 0
        for m in members:
            t = table.get(m)
            if t is None or t[0] < self.cfg.lost_polls or t[1] is None or (s.name, m) in self.open:
                return False
            if t[2] is not None or m in self.known:
                last = t[2] if t[2] is not None else max(self.started, t[1] - interval)
                if now - max(last, self.relinked.get((s.name, m), -math.inf)) < limit:
                    return False
                heard += 1
        return heard >= 2

    def _link_check(self, s, key: str, d: dict, table: dict, now: float, limit: float) -> None:
        o = d["alert"]
        run = [table[m][2] for m, _ in d["units"] if m in table and table[m][2] is not None]
        run = max(run) if run else None     # its units' last answer in this run
        # (for the evidence: else the newest reading the store has of them)
        old = [self.known_at[m] for m, _ in d["units"] if m in self.known_at]
        last = run if run is not None else max(old) if old else None
        if o is None:
            mid = f"{d['label']}:{key}"
            if not self.cfg.enabled or self._ignored(mid) or all(self._ignored(m) for m, _ in d["units"]):
                return   # (``ignore`` names it, or every meter behind it)
            if run is None and not any(m in self.known for m, _ in d["units"]):
                return   # no unit behind it ever heard: not commissioned (the source's log says it unreachable)
            # (as a meter's: from its last answer in this run, else this run's start: a watcher away
            # an hour does not page at once for a gateway that failed a second before its start)
            if now - (run if run is not None else max(self.started, d["since"])) < limit:
                return
            o = d["alert"] = {"since": d["since"], "end": now, "limit_s": limit, "heard": last}
            self.counters["gateway_alerts"] += 1
        else:
            if last is not None and (o["heard"] is None or last > o["heard"]):
                o["heard"] = last
            o["end"] = now
            if now - o.get("written", 0.0) < self.cfg.update_s and _severity(o) == o.get("severity"):
                return
            self.counters["updated"] += 1
        o["why"], o["units"], o["label"] = d["why"], d["units"], d["label"]
        a = self._link_alert(s.name, key, o, ended=False)
        new = "written" not in o
        o["written"], o["severity"] = now, a.severity
        self._out[a.id] = a
        if new:
            log.warning("%s: %s", s.name, a.message)

    def _end_link(self, s, key: str, d: dict, now: float) -> None:
        o = d["alert"]
        o["end"] = max(o["since"], now)
        a = self._link_alert(s.name, key, o, ended=True, reconnected=now)
        self._out[a.id] = a
        self.counters["ended"] += 1

    def _link_alert(self, name: str, key: str, o: dict, ended: bool, reconnected: float | None = None) -> Alert:
        from wattwatch.codes import severity

        silent_s, score = _score(o)
        units = [{"meter_id": m, "unit": u} for m, u in o.get("units") or []]
        what = o.get("label", "gateway")
        ev = {"kind": LINK_KIND, "source": name, "gateway": key, "link": what, "why": o.get("why") or "unreachable",
              "units": units, "meters": len(units), "since": iso(_ts(o["since"])),
              "last_heard": iso(_ts(o["heard"])) if o["heard"] is not None else None,
              "down_s": round(max(0.0, o["end"] - o["since"]), 1), "silent_s": round(silent_s, 1),
              "limit_s": round(o["limit_s"], 3), "ended": ended}
        if reconnected is not None:
            ev["reconnected"] = iso(_ts(reconnected))
        behind = ", ".join(f"{u['meter_id']} (unit {u['unit']})" if u["unit"] is not None else u["meter_id"]
                           for u in units[:8]) + (f" and {len(units) - 8} more" if len(units) > 8 else "")
        msg = (f"{what} {key} unreachable for {ev['down_s']:.0f} s ({ev['why']}): no reading from the "
               f"{len(units)} meter(s) behind it: {behind}" if not ended else
               f"{what} {key} was unreachable {ev['down_s']:.0f} s; answering again (a meter behind it still "
               "silent after the limit is alerted on its own)")
        return Alert(meter_id=f"{what}:{key}", start=iso(_ts(o["since"])), end=iso(_ts(o["end"])), code=CODE,
                     severity=severity(CODE, score), score=score, detector=DETECTOR, message=msg, evidence=ev)

    def _links(self, sources: list, now: float) -> None:
        """Which push sources are cut off from their broker (see the module): one seen cut off is
        noted (since now); one seen connected again restarts its meters' clocks from now (their
        queued readings arrive now: no gap, their silence counted from the reconnect) and ends the
        source's alert. A status that says neither (``starting``, ``closed``) changes nothing."""
        for s in sources:
            if not _is_push(s):
                continue
            up = _link_up(s)
            d = self.down.get(s.name)
            if up is False:
                if d is None:
                    self.down[s.name] = {"since": now, "status": str(s.status), "alert": None}
                    self.counters["sources_down"] += 1
                    log.info("silence: %s is not connected to its broker (%s): its meters are not judged silent "
                             "until it is", s.name, s.status)
                else:
                    d["status"] = str(s.status)
            elif up and d is not None:
                del self.down[s.name]
                for key, p in self.push.items():
                    # (a meter already alerted before the outage stays so: its first reading ends it)
                    if key[0] == s.name and key not in self.open:
                        if p.before is None:
                            p.before = p.last
                        p.last = max(p.last, now)
                if d["alert"] is not None:
                    self._end_source(s.name, d, now)
                log.log(logging.WARNING if d["alert"] is not None else logging.INFO,
                        "silence: %s is connected again after %.0f s", s.name, now - d["since"])

    # ------------------------------------------------------------------ push arrivals

    def heard(self, batches: list, sources: list) -> None:
        """Note when each push meter's readings arrived (``Batch.arrived``, monotonic, as wall time)
        and the gaps between its readings' times (for its cadence: :meth:`_Push.cadence`)."""
        now_w, now_m = self.clock(), time.monotonic()
        self._jumped(now_w)   # (before this step's arrivals, which are in the clock as it is now)
        self._links(sources, now_w)   # (a reconnect before the backlog it brings)
        push = {s.name for s in sources if _is_push(s)}
        if not push:
            return
        for b in batches:
            if b.source not in push or not len(b.frame) or "meter_id" not in b.frame:
                continue
            t = now_w - max(0.0, now_m - b.arrived)
            f = b.frame
            ids = f["meter_id"].astype(str).to_numpy()
            ts = (pd.to_datetime(f["ts"], utc=True) - _EPOCH).dt.total_seconds().to_numpy() if "ts" in f \
                else np.full(len(f), np.nan)
            order = np.lexsort((ts, ids))
            ids, ts = ids[order], ts[order]
            metas, first = np.unique(ids, return_index=True)
            tl = ts.tolist()
            for m, a, z in zip(metas.tolist(), first.tolist(), first[1:].tolist() + [len(ids)]):
                key = (b.source, m)
                p = self.push.get(key)
                new = p is None
                if new:
                    p = self.push[key] = _Push(t)
                if z - a == 1:                       # (one reading of it: most batches)
                    x = tl[a]
                    if math.isfinite(x) and (p.ts is None or x > p.ts):
                        if p.ts is not None:
                            p.tgaps.append(x - p.ts)
                        p.ts = x
                else:
                    mt = ts[a:z][np.isfinite(ts[a:z])]   # its readings' times, sorted
                    if p.ts is not None:
                        mt = np.concatenate(([p.ts], mt[mt > p.ts]))
                    if len(mt):
                        d = np.diff(mt)
                        p.tgaps.extend(d[d > 0].tolist())
                        p.ts = float(mt[-1])
                if new:
                    continue
                if p.before is not None:   # restored: its first arrival of this run is no gap
                    p.last, p.before = max(t, p.last), None
                elif t > p.last:
                    p.gaps.append(t - p.last)
                    p.last = t

    # ------------------------------------------------------------------ the check

    def _ignored(self, meter: str) -> bool:
        return any(fnmatch.fnmatchcase(meter, g) for g in self.cfg.ignore)

    def check(self, sources: list) -> list[Alert]:
        """The silence alerts opened, updated or ended since the last call (and those a restart
        ended)."""
        now = self.clock()
        self._jumped(now)
        self._links(sources, now)
        c = self.cfg
        for s in sources:
            if not getattr(s, "watch_silence", True):
                continue
            table = getattr(s, "silence", None)
            if table is not None:
                interval = float(getattr(s, "interval_s", 0.0) or 0.0)
                limit = max(c.min_s, c.lost_polls * interval)
                table = dict(table)    # (a snapshot: the event loop's thread writes it)
                held = self._poller_links(s, table, now, limit) if interval <= c.max_cadence_s else set()
                for m, (lost, since, heard) in table.items():
                    key = (s.name, m)
                    gone = self.retired.get(key)
                    if gone is not None:
                        if heard is None or heard <= gone:
                            continue   # (le) a lost outlet cleared by an operator: not watched ...
                        del self.retired[key]   # ... until its agent lists it again
                    o = self.open.get(key)
                    back = self.relinked.get(key)
                    if back is not None and heard is not None and heard >= back:
                        del self.relinked[key]     # answered since its gateway came back
                        back = None
                    if o is not None:
                        if heard is not None and heard > o["since"] and (lost == 0 or since is None or since > o["since"]):
                            self._end(key, o, heard, s)
                            o = None
                        elif lost and since is not None:
                            o["lost"] = (o["lost0"] if since >= o.get("resumed", math.inf) else 0) + lost
                            o["end"] = now
                            o["facts"] = self._facts(s, m) or o["facts"]
                            if o["facts"].get("lost_outlet") and self._cleared(o):
                                self._retire(key, o, s, now)
                            else:
                                self._update(key, o, now, s)
                        continue
                    if not c.enabled or lost < c.lost_polls or since is None or interval > c.max_cadence_s \
                            or self._ignored(m):
                        continue
                    if m in held:
                        continue   # its gateway is down: the gateway's alert says it (_poller_links)
                    if heard is None and m not in self.known:
                        continue   # never heard: not commissioned (the source's counters say it)
                    quiet = now - max(heard if heard is not None else max(self.started, since - interval),
                                      back if back is not None else -math.inf)
                    if quiet >= limit:
                        self._open(key, {"since": since, "end": now, "lost0": 0, "lost": lost, "limit_s": limit,
                                         "cadence_s": interval, "heard": heard if heard is not None else
                                         self.known_at.get(m), "facts": self._facts(s, m)}, s, now)
            elif _is_push(s):
                expect = c.expect_s.get(s.name)
                d = self.down.get(s.name)
                if d is not None:
                    self._source_check(s, d, now)
                for key, p in list(self.push.items()):
                    if key[0] != s.name:
                        continue
                    o = self.open.get(key)
                    if o is not None:
                        if p.last > o["ref"] + 1e-3:   # arrived since it went silent
                            self._end(key, o, p.last, s)
                        else:
                            o["end"] = now
                            cad = o["cadence_s"] or 1.0
                            o["lost"] = max(o["lost"], int((now - o["heard"]) // cad)) if o["heard"] else o["lost"]
                            o["facts"] = _push_facts(s)   # (its only fact: why, the source's state now)
                            self._update(key, o, now, s)
                        continue
                    cad = expect if expect else p.cadence(c.learn)
                    if d is not None or not c.enabled or not cad or cad > c.max_cadence_s or self._ignored(key[1]):
                        continue
                    limit = max(c.min_s, c.cadences * cad)
                    if now - p.last >= limit:
                        last = p.last if p.before is None else p.before   # (restored: before the restart)
                        self._open(key, {"since": last + cad, "end": now, "lost0": 0, "ref": p.last,
                                         "lost": int((now - last) // cad), "limit_s": limit, "cadence_s": cad,
                                         "heard": last, "facts": _push_facts(s)}, s, now)
        out = list(self._out.values())
        self._out.clear()
        return out

    def _jumped(self, now: float) -> None:
        """A wall-clock step since the last check (the wall clock moved more than 5 s away from the
        steady one): the push meters' last arrivals (and an open alert's reference) move with it,
        so that a clock set forward does not find every push meter silent at once, nor one set back
        delay their alerts by the step. (A poller's table is kept by its own thread in wall time: a
        meter already 3 polls silent at a forward step is alerted at once; a step back delays a
        silent polled meter's alert by the step.)"""
        if self.mono is None:
            return
        m = self.mono()
        ref, self._ref = self._ref, (now, m)
        if ref is None:
            return
        step = (now - ref[0]) - (m - ref[1])
        if abs(step) <= 5.0:
            return
        log.warning("silence: the wall clock stepped %+.1f s: push meters' last arrivals moved with it", step)
        self.counters["clock_steps"] += 1
        for p in self.push.values():
            p.last += step
        for o in self.open.values():
            if "ref" in o:
                o["ref"] += step
        for d in self.down.values():
            if d["alert"] is None:   # (an open one keeps its start: its id)
                d["since"] += step
        for k in self.relinked:
            self.relinked[k] += step

    def _facts(self, s, m) -> dict:
        f = getattr(s, "silence_facts", None)
        return f(m) if f is not None else {}

    # ------------------------------------------------------------------ alert versions

    def _alert(self, key, o: dict, source, ended: bool, heard_again: float | None = None) -> Alert:
        from wattwatch.codes import severity

        src, m = key
        silent_s, score = _score(o)
        facts = dict(o["facts"] or {})
        ev = {"kind": KIND, "source": src, "lost": int(o["lost"]), "since": iso(_ts(o["since"])),
              "last_heard": iso(_ts(o["heard"])) if o["heard"] is not None else None,
              "silent_s": round(silent_s, 1), "limit_s": round(o["limit_s"], 3),
              "cadence_s": None if o["cadence_s"] is None else round(float(o["cadence_s"]), 3), **facts,
              "ended": ended}
        if heard_again is not None:
            ev["heard_again"] = iso(_ts(heard_again))
        poll = hasattr(source, "silence")
        what = (f"{o['lost']} polls lost in a row" if poll else f"no reading for {silent_s:.0f} s "
                f"(expected every {o['cadence_s']:.0f} s)")
        where = f" on gateway {facts['gateway']}" if facts.get("gateway") else ""
        why = f" ({facts['why']})" if facts.get("why") else ""
        msg = (f"silent: no answer from {m}{where} for {silent_s:.0f} s, {what}{why}" if not ended else
               f"was silent {silent_s:.0f} s{where} ({what}); answering again (the packet-loss rule judges the "
               "gap in its readings)")
        return Alert(meter_id=m, start=iso(_ts(o["since"])), end=iso(_ts(o["end"])), code=CODE,
                     severity=severity(CODE, score), score=score, detector=DETECTOR, message=msg, evidence=ev)

    def _open(self, key, o: dict, source, now: float) -> None:
        a = self._alert(key, o, source, ended=False)
        o["written"], o["severity"], o["id"] = now, a.severity, a.id
        self.open[key] = o
        self._out[a.id] = a
        self.counters["opened"] += 1
        log.warning("%s: %s is silent: %s", key[0], key[1], a.message)

    def _update(self, key, o: dict, now: float, source) -> None:
        if now - o.get("written", 0.0) < self.cfg.update_s and _severity(o) == o.get("severity"):
            return   # (building the version costs ~30 us: only when it is written)
        a = self._alert(key, o, source, ended=False)
        o["written"], o["severity"] = now, a.severity
        self._out[a.id] = a
        self.counters["updated"] += 1

    def _end(self, key, o: dict, heard: float, source) -> None:
        o["end"] = max(o["since"], heard)
        a = self._alert(key, o, source, ended=True, heard_again=heard)
        self._out[a.id] = a
        del self.open[key]
        self.counters["ended"] += 1
        log.warning("%s: %s answers again after %s s of silence", key[0], key[1], a.evidence["silent_s"])

    def _cleared(self, o: dict) -> bool:
        """(le2) Whether an operator cleared the open alert ``o``: the engine's word
        (``status_of``), else the status it had in the store at the restart."""
        st = self.status_of(o.get("id"))
        return (st if st is not None else o.get("stored_status")) == "cleared"

    def _retire(self, key, o: dict, source, at: float) -> None:
        """(le) A lost outlet (its agent answers and no longer lists it) whose alert an operator
        cleared: taken as removed for good. Its alert ends saying so (``evidence.retired``); it is not
        watched -- by this run, nor a restart (the store's ended version says it) -- until its agent
        lists it again, when it is watched as any outlet heard. (Acknowledged, it stays alerted: someone
        has it in hand, and it may come back; cleared, it is over.)"""
        a = self._alert(key, o, source, ended=True)
        why = ("cleared while its agent no longer lists it: taken as removed for good, no longer watched "
               "until the agent lists it again")
        self._out[a.id] = Alert(**{**a.__dict__, "message": f"lost outlet {key[1]} cleared: {why}",
                                   "evidence": {**a.evidence, "retired": True, "ended_because": why}})
        del self.open[key]
        self.retired[key] = at
        forget = getattr(source, "forget", None)
        if forget is not None:
            forget(key[1])   # (no longer among its agent's units)
        self.counters["retired"] += 1
        log.warning("%s: %s %s", key[0], key[1], why)

    def _source_check(self, s, d: dict, now: float) -> None:
        """A push source cut off since ``d["since"]``: its alert opened once that is ``min_s``,
        then updated as a meter's."""
        o = d["alert"]
        n = sum(1 for k in self.push if k[0] == s.name)
        if o is None:
            if not self.cfg.enabled or now - d["since"] < self.cfg.min_s:
                return
            o = d["alert"] = {"since": d["since"], "end": now, "limit_s": self.cfg.min_s, "status": d["status"],
                              "meters": n}
            o.update(_configured(s))
            a = self._source_alert(s.name, o, ended=False)
            o["written"], o["severity"] = now, a.severity
            self._out[a.id] = a
            self.counters["source_alerts"] += 1
            log.warning("%s: %s", s.name, a.message)
            return
        o["end"], o["status"], o["meters"] = now, d["status"], max(n, o.get("meters", 0))
        o.update(_configured(s))
        if now - o.get("written", 0.0) < self.cfg.update_s and _severity(_as_silent(o)) == o.get("severity"):
            return
        a = self._source_alert(s.name, o, ended=False)
        o["written"], o["severity"] = now, a.severity
        self._out[a.id] = a
        self.counters["updated"] += 1

    def _end_source(self, name: str, d: dict, now: float) -> None:
        o = d["alert"]
        o["end"] = max(o["since"], now)
        a = self._source_alert(name, o, ended=True, reconnected=now)
        self._out[a.id] = a
        self.counters["ended"] += 1

    def _source_alert(self, name: str, o: dict, ended: bool, reconnected: float | None = None) -> Alert:
        from wattwatch.codes import severity

        down_s, score = _score(_as_silent(o))
        n = int(o.get("meters") or 0)
        why = _cut_off_why(o["status"], o.get("broker"))
        ev = {"kind": SOURCE_KIND, "source": name, "status": o["status"], "why": why,
              "since": iso(_ts(o["since"])), "down_s": round(down_s, 1), "limit_s": round(o["limit_s"], 3),
              "ended": ended}
        # Its meters waiting: those heard (or kept by the checkpoint); none heard yet (cut off since
        # the start), what is configured instead -- its topics and the meters its topic map names --
        # not a "0 meters" that reads as a source with nothing behind it.
        if n:
            ev["meters"] = n
        for k in ("broker", "topics", "mapped"):
            if o.get(k):
                ev[k] = o[k]
        if reconnected is not None:
            ev["reconnected"] = iso(_ts(reconnected))
        if n:
            what = f"no reading of its {n} meter(s) can arrive"
        else:
            mapped = o.get("mapped") or []
            what = ("nothing heard from it yet in this run (topics " + ", ".join(o.get("topics") or ["?"])
                    + (f"; meters mapped: {', '.join(mapped[:8])}" + (f" and {len(mapped) - 8} more" if len(mapped) > 8
                                                                      else "") if mapped else "") + ")")
        msg = (f"source {name} cut off from its broker for {down_s:.0f} s ({why}): {what}; its meters are "
               "judged silent only once it is back" if not ended else
               f"source {name} was cut off from its broker {down_s:.0f} s; connected again (its meters' queued "
               "readings arrive now; one still silent after the limit is alerted)")
        return Alert(meter_id=SOURCE_PREFIX + name, start=iso(_ts(o["since"])), end=iso(_ts(o["end"])), code=CODE,
                     severity=severity(CODE, score), score=score, detector=DETECTOR, message=msg, evidence=ev)

    def silent(self) -> set[str]:
        """The meters silent now (for the console)."""
        return {m for _, m in self.open}

    def position(self) -> dict:
        """What the engine's checkpoint keeps: each push meter's cadence and last arrival (its open
        alert, if any, is read back from the store). The arrival is the real one: for a meter whose
        clock was restarted (at a reconnect, or a restart) and not heard since, ``before``, not the
        restart (a restarted watcher counts its silence from its own start anyway; the arrival is
        what its alert's start and ``last_heard`` say)."""
        out = []
        for (src, m), p in list(self.push.items()):
            cad = self.cfg.expect_s.get(src) or p.cadence(self.cfg.learn)
            if cad:
                out.append([src, m, round(cad, 3), round(p.last if p.before is None else p.before, 3)])
        return {"push": out}

    def rows(self) -> list[dict]:
        """The silent meters for the console, longest silent first."""
        out = [{"meter_id": m, "source": src, "since": iso(_ts(o["since"])), "lost": int(o["lost"]),
                "why": str((o["facts"] or {}).get("why", ""))} for (src, m), o in list(self.open.items())]
        out += [{"meter_id": SOURCE_PREFIX + src, "source": src, "since": iso(_ts(d["since"])), "lost": 0,
                 "why": f"cut off from its broker ({d['status']})"} for src, d in list(self.down.items())
                if d["alert"] is not None]
        out += [{"meter_id": f"{d['label']}:{key}", "source": src, "since": iso(_ts(d["since"])), "lost": 0,
                 "why": f"{d['label']} unreachable ({d['why'] or 'down'}): {len(d['units'])} meter(s) behind it"}
                for (src, key), d in list(self.links.items()) if d["alert"] is not None]
        return sorted(out, key=lambda r: r["since"])

    def view(self) -> dict:
        return {"silent": len(self.open), "cut_off": len(self.down),
                "gateways_unreachable": sum(d["alert"] is not None for d in self.links.values()), **self.counters}


def _push_facts(s) -> dict:
    """A push source that is not subscribed (its broker down, refused) is why its meters are silent."""
    st = str(getattr(s, "status", ""))
    return {} if st in ("subscribed", "connected", "") else {"why": f"source {st}"}


def _configured(s) -> dict:
    """What a push source is configured to hear: its broker, topics and the meters its topic map names."""
    out = {}
    if getattr(s, "host", None):
        out["broker"] = f"{s.host}:{getattr(s, 'port', '')}"
    if getattr(s, "topics", None):
        out["topics"] = [str(t) for t in s.topics]
    if getattr(s, "meters", None):
        out["mapped"] = sorted({str(m) for m in s.meters.values()})
    return out


def _cut_off_why(status: str, broker: str | None) -> str:
    """Why a push source is cut off, from its status: the broker's own refusal reason when it
    refuses the connection (bad credentials, not authorised), else what the link does."""
    at = f" at {broker}" if broker else ""
    if status.startswith("refused"):
        return f"the broker{at} refused the connection: {status.partition(':')[2].strip() or 'no reason given'}"
    if status == "connecting":
        return f"the broker{at} cannot be reached (not connected since the start); trying again"
    if status == "reconnecting":
        return f"the connection to the broker{at} was lost; reconnecting"
    return status


def _link_up(s) -> bool | None:
    """A push source's link to its broker: True (connected, subscribed), False (connecting,
    reconnecting, refused), None (not started, closed: says nothing)."""
    st = str(getattr(s, "status", ""))
    if st in ("subscribed", "connected"):
        return True
    if st in ("connecting", "reconnecting") or st.startswith("refused"):
        return False
    return None


def _as_silent(o: dict) -> dict:
    """A source alert's facts as :func:`_score` reads them (silent from ``since``)."""
    return {"heard": None, "since": o["since"], "end": o["end"], "limit_s": o["limit_s"]}


def _score(o: dict) -> tuple[float, float]:
    """Seconds silent (from the last answer, or the first lost poll) and the score:
    ``1 - 0.5 ** (silent / limit)`` (0.5 at the limit: warning; 0.875 at three times: critical)."""
    ref = o["heard"] if o["heard"] is not None else o["since"]
    silent_s = max(0.0, o["end"] - ref)
    return silent_s, round(1.0 - 0.5 ** (silent_s / max(o["limit_s"], 1e-9)), 4)


def _severity(o: dict) -> str:
    from wattwatch.codes import severity

    return severity(CODE, _score(o)[1])


def _ts(t: float | None):
    import pandas as pd

    return None if t is None else pd.Timestamp(round(t * 1000), unit="ms", tz="UTC")


def _epoch(t) -> float | None:
    import pandas as pd

    if t is None:
        return None
    return pd.Timestamp(t).value / 1e9
