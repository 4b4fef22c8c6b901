"""What every action shares: the ``[[actions]]`` keys common to all kinds (``match``, ``on``,
``dry_run``, ``rate_limit``, ``queue``), the worker thread with its bounded queue, and the
``actions_log`` table in the store.

Common keys of an ``[[actions]]`` table::

    match = { code = ["ALRM_*"], severity = ["critical"], min_severity = "warning",
              meter = ["pdu-*"], tags = ["non-essential"],
              detector = ["silence"] }   # every given key must match
    on = ["opened"]            # events: opened, updated, ended, stopped, withdrawn (default: opened)
    dry_run = true             # default: log what would be done, do nothing
    rate_limit = { max = 10, per_meter = 2, window_s = 3600 }
    queue = 256                # jobs waiting for the worker; beyond it a job is dropped (logged)
    on_provisional = false     # act on provisional alerts too (default: false for modbus_write and
                               # command, true for webhook and mqtt_publish)

``withdrawn`` (le3): late readings re-judged the alert's meter and the alert is no longer found (a
packet-loss gap the readings filled; its row is deleted), or the final verdict withdrew a provisional
alert. The action gets the alert as last written, ``evidence.withdrawn`` saying why, and the message's
``state`` is ``withdrawn``; once per alert, also for one that had ended before (told ``ended`` then),
also across ``kill -9`` (the withdrawal is kept in the store until its outputs ran; the job, in
``actions_pending``). Only the withdrawal of an alert this action acted on before (rle3: a job of
another event queued or logged; not one rate-limited, below ``match`` when it opened, or provisional
for an action without ``on_provisional``): news of an alert it never sent is noise, and a
``withdrawn_value`` would switch a load it never shed; an action whose ``on`` is ``["withdrawn"]``
alone is told every matching withdrawal. An alert withdrawn while still open also ends: ``ended`` first (as before),
then ``withdrawn``. ``modbus_write`` writes nothing on a withdrawal unless it has ``withdrawn_value``:
what a withdrawal leaves (a shed load stays shed) is for someone on site to decide; with
``on = [.., "withdrawn"]`` and no ``withdrawn_value`` the withdrawal is logged (``ok``, "nothing
written") with the alert, so whoever restores the load sees why.

Every message (command stdin, webhook body, MQTT payload) carries ``event`` and ``state``: the
alert's state after the event, as the InfluxDB sink's alert point says it (``open`` for opened and
updated, ``stopped``, ``ended``, ``withdrawn``: also an ``ended`` event of an alert withdrawn while
open).

``stopped`` is refused at load where it can never fire: with ``on_provisional = false`` (only a
provisional alert is told stopped) and for ``modbus_write`` (it switches no load on a pending verdict).

A *provisional* alert (``evidence.provisional``: the stream wrote it before a long blocker such as
loose_ct gave its final verdict; see ``[stream] provisional``) reaches an action with
``on_provisional = true`` as any alert (opened, updated; ``ended`` with ``evidence.withdrawn`` when
the final verdict withdraws it, with ``evidence.undecided`` when its meter was compacted before a
final verdict; ``stopped`` when its readings are back to normal and its verdict is still pending:
its ``ended`` comes with the verdict). An action with ``on_provisional = false`` does not see it until the
final judgement confirms it (then ``opened``), and never sees one that is withdrawn or ends undecided:
an action that switches a load should not switch it on evidence that may be a loose clamp.
A final alert written with a provisional continuation (``evidence.continued``, a member
``"pending": true``) reaches such an action without the pending part (rpf): its ``updated`` only when
that final part changed since the action was told it (the head's own readings grew it; al), not for
the pending member's growth, whose verdict decides.

``ended`` (al), like ``withdrawn``: only for an alert this action acted on (a job of another event
queued, or logged ok/refused/failed): not for one whose opening it rate-limited, or that did not match
when it opened (``min_severity``) and ended matching; an ``ended_value`` would restore a load it never
shed. An action whose ``on`` has no ``opened``, ``updated`` or ``stopped`` hears every matching end.
What an action did is kept in memory only while the engine holds the alert (open, provisional, a head
with a pending follower); after it ended or was withdrawn the id is forgotten, and an event that comes
for it later (a withdrawal by late readings, a continuation that makes it grow again) is checked
against the store's ``actions_log`` and ``actions_pending``, as a restarted watcher checks its first
alerts: it tells nothing twice and misses no withdrawal it owes. An alert the engine reports new is
read back only when the log may have it (logged since the checkpoint the watcher resumed from, or no
checkpoint; or withdrawn earlier, in this run or (``alerts_withdrawn``) an earlier one, and found again).
An alert withdrawn and found again (later readings make it after all) is a fault again (ral): an action
told its ``ended`` or ``withdrawn`` since its ``opened`` (a load restored) is told ``opened`` anew, and
then its end; one told neither (for it the alert never closed) is not told ``opened`` twice. The same
within one run and across a restart; a restart's replay of an alert not withdrawn since tells nothing again.
(ah) Likewise an alert open again after its end (a head a continuation makes grow: the engine's
``reopened``): an action told its ``ended`` is told ``opened`` anew, then its second end; one that
waits for final alerts is not while only a pending (provisional) member keeps it open, (rah) and
is once that member is confirmed final and open (its final part open again). An action told
an alert's end is never told an ``updated`` of it after (state "open" after "ended") unless it is
told it opened again. "Since its opening" is judged by when each job was queued (``actions_log``'s
``queued_at``), not when its outcome was logged; a restart's jobs left pending run before any later
job of the same alert.
(rah) Also across a restart: a head that ended before it (closed at the checkpoint) and is continued
after it is open again, as the store's log tells what each action was told.

``code``, ``meter`` and ``detector`` are shell-style globs (``*``, ``?``, ``[..]``), matched
case-sensitively. ``detector`` tells apart alerts that share a code: ``ALRM_PKT_LOSS_CRIT`` is
raised by the silence watch while a meter does not answer (detector ``silence``) and by the core's
rule afterwards for the gap in its readings (``packet_loss``); ``detector = "silence"`` pages on
the first only.
``tags``: the meter must carry every listed tag; a meter's tags come from the site config's
``[meter_tags]`` table (meter glob -> list of tags).

An ``updated`` event of an alert that was acknowledged or cleared (``wattwatch alerts ack``) does
not act: someone has it in hand. An ``opened`` or ``ended`` event that this action already handled (logged ``ok``, ``refused`` or
``failed``, same ``dry_run``) is not repeated: a watcher restarted after ``kill -9`` finds the
alerts it found before, and does not shed the same load twice.

An ``opened`` or ``ended`` job is recorded in the store's ``actions_pending`` as it is queued (in
the step that delivers the alert, before the source's message is acknowledged and before the
checkpoint) and removed when its outcome is logged; a watcher killed in between runs the jobs left
there at its next start (at least once: a job killed while it ran runs again; one the log has
done is skipped), all of them: those the queue cannot take at once wait for room, not dropped.
Stopped cleanly, a watcher leaves the jobs it had no time for (``close_timeout_s``) pending too: its
next start runs them (an ``updated`` job is logged ``failed`` instead: it is not kept).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pandas as pd

from wattwatch import dbtables
from wattwatch.alerts.model import Alert, log_safe
from wattwatch.codes import SEVERITIES
from wattwatch.detect.continuation import final_part
from wattwatch.sinks import Output
from wattwatch.tomlfile import only  # noqa: F401  (the actions import it from here)

log = logging.getLogger("wattwatch.watch.actions")

# (pc) "stopped": a provisional alert whose condition ended (its readings back to normal) while its
# final verdict is pending (only for an action with on_provisional; its ``ended`` comes with the verdict)
# (le3) "withdrawn": a re-judging or the final verdict withdrew the alert (see the module)
EVENTS = ("opened", "updated", "ended", "stopped", "withdrawn")
OUTCOMES = ("ok", "refused", "failed", "rate_limited", "dropped")
COMMON = {"match", "on", "dry_run", "rate_limit", "queue", "close_timeout_s", "on_provisional"}
FIELDS = ("id", "meter_id", "code", "severity", "detector", "event", "action")
_FIELD = re.compile(r"\{([^{}]*)\}")

LOG_DDL = ("CREATE TABLE IF NOT EXISTS actions_log (alert_id VARCHAR, action VARCHAR, kind VARCHAR, event VARCHAR, "
           "done_at TIMESTAMPTZ, dry_run BOOLEAN, outcome VARCHAR, detail VARCHAR, attempts INTEGER, ms DOUBLE, "
           "meter_id VARCHAR, code VARCHAR, queued_at TIMESTAMPTZ)")
# (ah) ``queued_at``: when the job was queued (the event it tells happened then; ``done_at`` is when
# its outcome was logged, after the worker's wait): what is compared with a withdrawal's time
# (``alerts_withdrawn``) and orders an alert's events. NULL in rows logged before it existed.
_LOG_COLS = ("alert_id, action, kind, event, done_at, dry_run, outcome, detail, attempts, ms, meter_id, code, "
             "queued_at")


# The jobs of ``opened`` and ``ended`` events an action has queued and not logged yet (the alert as
# it was handed over, JSON): a watcher killed meanwhile runs them at its next start (see Action).
PENDING_DDL = ("CREATE TABLE IF NOT EXISTS actions_pending (alert_id VARCHAR, action VARCHAR, event VARCHAR, "
               "dry_run BOOLEAN, queued_at TIMESTAMPTZ, alert VARCHAR)")


def ensure_log(con) -> None:
    """Create ``actions_log`` (and ``actions_pending``) when the store lacks them; (ah) give an older
    ``actions_log`` its ``queued_at`` column."""
    dbtables.ensure_tables(con, [LOG_DDL, PENDING_DDL])
    if not con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = current_database() AND "
                       "table_name = 'actions_log' AND column_name = 'queued_at'").fetchall():
        try:
            con.execute("ALTER TABLE actions_log ADD COLUMN queued_at TIMESTAMPTZ")
        except duckdb.Error:   # a read-only store: its readers never need the column
            if not _read_only(con):
                raise


def _read_only(con) -> bool:
    return bool(con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()")
                .fetchone()[0])


def drop_removed(con, outputs) -> int:
    """Log ``dropped`` (and forget) the jobs ``actions_pending`` holds for actions this site no longer
    has, or has with the other ``dry_run`` (a dry-run job is not a live action's to run, nor the
    reverse): nothing else would ever read or remove them. Returns how many; said as a warning."""
    if "actions_pending" not in dbtables.tables(con):
        return 0
    have = {(o.name, bool(o.dry_run)) for o in outputs if isinstance(o, Action)}
    rows = con.execute("SELECT alert_id, action, event, dry_run, any_value(alert), min(queued_at) FROM actions_pending "
                       "GROUP BY alert_id, action, event, dry_run ORDER BY min(queued_at)").fetchall()
    names = {n for n, _ in have}
    stale = [r for r in rows if (r[1], bool(r[3])) not in have]
    if not stale:
        return 0
    log_rows = []
    for aid, action, ev, dry, doc, at in stale:
        why = (f"not run: the action is {'live' if dry else 'a dry run'} now (the job was queued "
               f"{'as a dry run' if dry else 'live'}); no longer its to run") if action in names else \
            "not run: the action is no longer in the site config"
        try:
            d = json.loads(doc)
            meter, code = d.get("meter_id"), d.get("code")
        except (TypeError, ValueError, AttributeError):
            meter = code = None
        log_rows.append((aid, action, ev, bool(dry), why, meter, code, at))
    con.execute("BEGIN TRANSACTION")
    try:
        ensure_log(con)
        con.executemany(f"INSERT INTO actions_log ({_LOG_COLS}) VALUES (?, ?, '', ?, now(), ?, 'dropped', ?, 0, 0, ?, ?, "
                        "?)", log_rows)
        con.executemany("DELETE FROM actions_pending WHERE alert_id = ? AND action = ? AND event = ? AND dry_run = ?",
                        [r[:4] for r in stale])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    said: dict[str, list] = {}
    for r in log_rows:
        said.setdefault(r[1], [0, r[4]])[0] += 1
    for action, (n, why) in sorted(said.items()):
        log.warning("action %s: %d job(s) left pending by an earlier run logged 'dropped' (%s)", action, n, why)
    return len(stale)


def actions_for(con, alert_id: str) -> pd.DataFrame:
    """The ``actions_log`` rows of one alert, oldest first (empty when the store has none)."""
    if "actions_log" not in dbtables.tables(con):
        return pd.DataFrame(columns=["alert_id", "action", "kind", "event", "done_at", "dry_run", "outcome", "detail",
                                     "attempts", "ms", "meter_id", "code"])
    return con.execute("SELECT * FROM actions_log WHERE alert_id = ? ORDER BY done_at, action", [alert_id]).df()


# ---------------------------------------------------------------------------------- spec helpers


def text(spec: dict, key: str, default=None, required: bool = False) -> str | None:
    v = spec.get(key, default)
    if v is None:
        if required:
            raise ValueError(f"{key} is required")
        return None
    if not isinstance(v, str) or not v:
        raise ValueError(f"{key} must be non-empty text, got {v!r}")
    return v


def number(spec: dict, key: str, default: float, lo: float, hi: float, integer: bool = False, label: str = ""):
    v = spec.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise ValueError(f"{label}{key} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not (lo <= v <= hi):
        raise ValueError(f"{label}{key} must be between {lo} and {hi}, got {v!r}")
    return int(v) if integer else float(v)


def flag(spec: dict, key: str, default: bool) -> bool:
    v = spec.get(key, default)
    if not isinstance(v, bool):
        raise ValueError(f"{key} must be true or false, got {v!r}")
    return v


def texts(v, key: str) -> list[str]:
    """A string or a list of strings, as a list."""
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"{key} must be text or a list of text, got {v!r}")
    return list(v)


def check_template(t: str, key: str) -> str:
    """A template may name only the alert fields in :data:`FIELDS` as ``{field}``."""
    for name in _FIELD.findall(t):
        if name not in FIELDS:
            raise ValueError(f"{key}: unknown field {{{name}}} in {t!r}; known: {', '.join(FIELDS)}")
    return t


def fill(t: str, values: dict) -> str:
    """``t`` with ``{field}`` replaced (no format mini-language: a value is never interpreted)."""
    return _FIELD.sub(lambda m: str(values.get(m.group(1), m.group(0))), t)


# ---------------------------------------------------------------------------------- matching


@dataclass
class Match:
    codes: list[str] | None = None
    severities: list[str] | None = None
    min_severity: str | None = None
    meters: list[str] | None = None
    tags: list[str] | None = None
    detectors: list[str] | None = None

    @classmethod
    def from_spec(cls, m) -> "Match":
        if m is None:
            return cls()
        if not isinstance(m, dict):
            raise ValueError(f"match must be a table (code, severity, min_severity, meter, tags, detector), got {m!r}")
        only(m, {"code", "severity", "min_severity", "meter", "tags", "detector"}, "match")
        out = cls()
        if "code" in m:
            out.codes = texts(m["code"], "match.code")
        if "severity" in m:
            out.severities = texts(m["severity"], "match.severity")
            bad = [s for s in out.severities if s not in SEVERITIES]
            if bad:
                raise ValueError(f"match.severity: {bad[0]!r} is not one of {', '.join(SEVERITIES)}")
        if "min_severity" in m:
            if m["min_severity"] not in SEVERITIES:
                raise ValueError(f"match.min_severity must be one of {', '.join(SEVERITIES)}, "
                                 f"got {m['min_severity']!r}")
            out.min_severity = m["min_severity"]
        if "meter" in m:
            out.meters = texts(m["meter"], "match.meter")
        if "tags" in m:
            out.tags = texts(m["tags"], "match.tags")
        if "detector" in m:
            out.detectors = texts(m["detector"], "match.detector")
        return out

    def __call__(self, a: Alert, tags: set[str]) -> bool:
        if self.codes is not None and not any(fnmatch.fnmatchcase(a.code, p) for p in self.codes):
            return False
        if self.severities is not None and a.severity not in self.severities:
            return False
        if self.min_severity is not None and (a.severity not in SEVERITIES or
                                              SEVERITIES.index(a.severity) < SEVERITIES.index(self.min_severity)):
            return False
        if self.meters is not None and not any(fnmatch.fnmatchcase(a.meter_id, p) for p in self.meters):
            return False
        if self.detectors is not None and not any(fnmatch.fnmatchcase(a.detector, p) for p in self.detectors):
            return False
        return self.tags is None or set(self.tags) <= tags


def meter_tags(doc, where: str = "[meter_tags]") -> dict[str, list[str]]:
    """``[meter_tags]``: meter glob -> list of tags (ValueError naming the key)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{where} must be a table of meter glob = [tags]")
    return {k: texts(v, f"{where}: {k!r}") for k, v in doc.items()}


class RateLimit:
    """At most ``max`` actions per ``window_s`` for the action, ``per_meter`` per meter (sliding)."""

    def __init__(self, spec):
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise ValueError(f"rate_limit must be a table (max, per_meter, window_s), got {spec!r}")
        only(spec, {"max", "per_meter", "window_s"}, "rate_limit")
        lab = "rate_limit."
        self.max = number(spec, "max", 0, 0, 1e9, True, lab) if "max" in spec else None
        self.per_meter = number(spec, "per_meter", 0, 0, 1e9, True, lab) if "per_meter" in spec else None
        self.window_s = number(spec, "window_s", 3600.0, 1e-3, 366 * 86400, label=lab)
        self.all: deque = deque()
        self.meters: dict[str, deque] = {}

    def allow(self, meter: str, now: float) -> str | None:
        """None when an action may run now (and counts it); otherwise why not."""
        lo = now - self.window_s
        while self.all and self.all[0] <= lo:
            self.all.popleft()
        d = self.meters.setdefault(meter, deque())
        while d and d[0] <= lo:
            d.popleft()
        if self.max is not None and len(self.all) >= self.max:
            return f"{self.max} action(s) in {self.window_s:g} s (rate_limit.max)"
        if self.per_meter is not None and len(d) >= self.per_meter:
            return f"{self.per_meter} action(s) for this meter in {self.window_s:g} s (rate_limit.per_meter)"
        self.all.append(now)
        d.append(now)
        return None


@dataclass
class Result:
    outcome: str          # ok, refused, failed
    detail: str
    attempts: int = 1


class Refused(Exception):
    """An action that must not be done (off the allow-list): logged ``refused``, nothing done."""


# ---------------------------------------------------------------------------------- the action


class Action(Output):
    """Base of every action kind: matching, rate limits, the worker and the log.

    A kind implements :meth:`perform` (``dry_run`` tells it to check and describe, not act) and
    may override :meth:`shutdown` to release connections."""

    kind = "action"
    # ``on_provisional``'s default: a notification may go out on a provisional alert (it says so);
    # an action that switches loads waits for the final verdict (modbus_write, command).
    provisional_default = True
    # event -> why this kind never acts on it (refused in ``on`` at config load)
    never_on: dict[str, str] = {}

    def __init__(self, name: str, spec: dict):
        super().__init__(name)
        self.match = Match.from_spec(spec.get("match"))
        on = texts(spec.get("on", ["opened"]), "on")
        bad = [e for e in on if e not in EVENTS]
        if bad:
            raise ValueError(f"on: {bad[0]!r} is not an event; events: {', '.join(EVENTS)}")
        self.on = set(on)
        self.dry_run = flag(spec, "dry_run", True)
        self.on_provisional = flag(spec, "on_provisional", self.provisional_default)
        # (le) an event this action can never be given is a config mistake, said at load, not a
        # silence found in the incident: ``stopped`` is only ever a provisional alert's
        for ev, why in self.never_on.items():
            if ev in self.on:
                raise ValueError(f"on: {ev!r} never fires for a {self.kind} action ({why}); take it out of on")
        if "stopped" in self.on and not self.on_provisional:
            raise ValueError("on: 'stopped' never fires with on_provisional = false (only a provisional alert is "
                             "told stopped, and this action waits for final alerts); set on_provisional = true "
                             "or take 'stopped' out of on")
        self.limit = RateLimit(spec.get("rate_limit"))
        self.queue_size = number(spec, "queue", 256, 1, 1_000_000, True)
        self.close_timeout_s = number(spec, "close_timeout_s", 30.0, 0.0, 3600.0)
        self.tags: dict[str, list[str]] = {}
        self.status = "dry run" if self.dry_run else "ready"
        self._q: queue.Queue = queue.Queue(self.queue_size)
        self._thread: threading.Thread | None = None
        self._cur = None                     # the worker's own connection to the store
        self._lock = threading.Lock()        # the log connection, used by the worker and the engine thread
        # (rle3, al) What this action did for each alert it holds in memory: id -> the events it acted
        # on (a job queued, or logged ok, refused or failed; ``updated`` included). An alert it acted on
        # is told its ``ended`` and ``withdrawn`` (unless ``on`` has no event before them: then every
        # matching one, :attr:`_every`); an event it acted on is not repeated (``updated`` aside).
        # Bounded (al): an alert the engine no longer holds (ended, withdrawn) is forgotten at the end
        # of the step; what comes later for an id not in memory (a withdrawal by late readings days
        # after its end, a restart's first steps) is read from the store (:meth:`_recall`), which keeps
        # every job (``actions_pending`` from its queueing, ``actions_log`` from its outcome).
        self._acts: dict[str, set[str]] = {}
        self._every = {"ended": not (self.on & {"opened", "updated", "stopped"}),
                       "withdrawn": self.on <= {"withdrawn"}}
        self._limited: set[tuple[str, str]] = set()
        # (al) of the alerts the engine reports new, those whose jobs the log may hold (see _start; None:
        # any), and those withdrawn in this run (found again, new again: a withdrawal is rare)
        self._old: set[str] | None = None
        self._gone: set[str] = set()
        # (ral) the ids withdrawn since this action was last told them opened (this run's withdrawals;
        # at a start, the store's ``alerts_withdrawn`` later than its log's ``opened``): found again, a
        # fault again, told ``opened`` anew if this action was told its end or withdrawal (a load its
        # ``ended_value``/``withdrawn_value`` restored is shed again); not to one that heard neither
        self._reopen: set[str] = set()
        # (rah) ids the engine reported open again (``reopened``) that an action waiting for final
        # alerts did not hear of (only a pending member kept them open): told ``opened`` anew if their
        # final part opens again while they are open; forgotten when they close (bounded by the open set)
        self._held_back: set[str] = set()
        # (ral) ids with an ``updated`` job handed to the worker and not logged yet: the one job the
        # store does not keep while it waits (``actions_pending`` has the others), so not forgotten
        # until it is logged (a withdrawal meanwhile would be read back as never acted on: untold)
        self._upd: dict[str, int] = {}
        self._upd_lock = threading.Lock()
        # (al) the version each alert's last opened/updated job was told (end, score, severity,
        # message) and whether it was given with a pending member then: a final head with a pending
        # follower is told its final part's growth only, and not again when it is put back to it
        self._last: dict[str, tuple[tuple, bool]] = {}
        # Jobs an earlier run left pending that the queue could not take at start: queued as it
        # has room (_feed: each step, and the worker after each job), still pending in the store
        # meanwhile; never dropped for the queue's size.
        self._backlog: deque[tuple[Alert, str, object]] = deque()   # (alert, event, queued at)
        # (ah) per alert, its jobs in the backlog: a later job of that alert waits behind them (handed
        # to the queue at once, its ``ended`` ran before the ``opened`` an earlier run left pending)
        self._behind: dict[str, int] = {}
        self._bl_lock = threading.Lock()
        self._closed = False

    # ---- configuration from the site
    def bind(self, tags: dict[str, list[str]]) -> None:
        self.tags = dict(tags)

    def meter_tags(self, meter: str) -> set[str]:
        return {t for glob, ts in self.tags.items() if fnmatch.fnmatchcase(meter, glob) for t in ts}

    # ---- what a kind implements
    def perform(self, alert: Alert, event: str, dry_run: bool) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release the kind's connections (worker thread, at close)."""

    def applies(self, alert: Alert, event: str) -> bool:
        """Whether this kind has anything to do for the alert (beyond ``match``); a kind whose
        config leaves some alerts out (a Modbus value given for some severities) says no here,
        before the rate limit counts it."""
        return True

    def sends(self, alert: Alert, event: str) -> bool:
        """(rle3) Whether the job reaches anything outside (the rate limit counts only those); a
        ``modbus_write`` withdrawal without ``withdrawn_value`` only logs."""
        return True

    # ---- the Output interface (engine thread)
    def alerts(self, report, engine) -> None:
        if self._closed:
            return
        if self._cur is None:
            self._start(engine.store.con, getattr(engine, "_resumed_saved", None))
        self._feed()
        new = set(report.new)
        # Provisional alerts (see the module): confirmed ones open now for an action that waits for
        # final alerts; withdrawn ones end (with the reason) for one that acts on them.
        confirmed = set() if self.on_provisional else set(getattr(report, "confirmed", ()))
        withdrawn = getattr(report, "withdrawn", None) or {}
        # (ah) open again after its end (a continuation made it grow): to an action told its end or
        # withdrawal, an opening anew (as one found again: ral), so its next ``ended`` is told too; not
        # to one waiting for final alerts while only a pending member keeps it open (its final part
        # closed: for it nothing reopened)
        back = [engine.alerts[i] for i in getattr(report, "reopened", ()) if i in engine.alerts]
        if not self.on_provisional:
            fin = [a for a in back if final_part(a) is a and not a.evidence.get("provisional")]
            self._held_back |= {a.id for a in back} - {a.id for a in fin}
            back = fin
            if self._held_back:
                # (rah) one open again only by a pending member (held back above) whose final part is
                # open again since (the member confirmed final and open): reopened for it now (was
                # never told: its load stayed restored through the change, its second end unsaid)
                fo = getattr(engine, "_final_open", None) or set()
                now = sorted(i for i in self._held_back if i in fo and i in engine.alerts)
                back += [engine.alerts[i] for i in now]
                # (one no longer open, its pending member withdrawn or closed: ended, told nothing)
                self._held_back = {i for i in self._held_back if i not in now and i in engine.open_ids}
        self._recall([a.id for a in back])
        told_closed = {a.id for a in back if self._acts.get(a.id, set()) & {"ended", "withdrawn"}}
        self._reopen |= told_closed
        events: list[tuple[Alert, str]] = []
        for a in report.alerts:
            events.append((a, "opened" if a.id in new or a.id in confirmed or a.id in told_closed else "updated"))
        for aid in (new | confirmed | told_closed) - {a.id for a in report.alerts}:
            a = engine.alerts.get(aid)
            if a is not None:
                events.append((a, "opened"))
        for aid in report.ended if "ended" in self.on else ():
            if aid in withdrawn and not self.on_provisional and withdrawn[aid].evidence.get("provisional"):
                continue   # never opened here (rle: a final alert a re-judging withdrew was: told it ended)
            a = withdrawn.get(aid) or engine.alerts.get(aid) or _stored_alert(engine.store.con, aid)
            if a is not None and not self.on_provisional and a.evidence.get("provisional"):
                continue   # (pc) still provisional as it ends (compacted before its verdict): never opened here
            if a is not None:
                events.append((a, "ended"))
        for aid in getattr(report, "stopped", ()) if "stopped" in self.on and self.on_provisional else ():
            a = engine.alerts.get(aid)   # (pc) once per alert (a later stop after it grew again: not again)
            if a is not None:
                events.append((a, "stopped"))
        # (le3) after its ``ended`` (one withdrawn while open); one that had ended before is in ``withdrawn`` only
        for aid, a in withdrawn.items() if "withdrawn" in self.on else ():
            if not self.on_provisional and a.evidence.get("provisional"):
                continue   # never opened here
            events.append((a, "withdrawn"))
        pending: set[str] = set()   # (al) ids given with a pending member (told their final part)
        if not self.on_provisional:
            events = [(a, ev) for a, ev in events if ev == "ended" or not a.evidence.get("provisional")]
            # (rpf) a final head written with a provisional follower ``pending`` (its merged version):
            # told without the pending part; (al) a continued alert's update only when that final part
            # changed since this action was told it (the head's own growth; not the pending follower's,
            # nor the head put back to the version it was told when its follower is withdrawn)
            kept = []
            for a, ev in events:
                f = final_part(a)
                if f is not a:
                    pending.add(a.id)
                last = self._last.get(a.id)
                if ev != "updated" or last is None or last[0] != _told_version(f) or not (f is not a or last[1]):
                    kept.append((f, ev))
            events = kept
        # An alert someone acknowledged or cleared is handled: its growth no longer acts.
        handled = set()
        if "updated" in self.on and any(ev == "updated" for _, ev in events):
            from wattwatch.alerts.store import statuses

            got = statuses(engine.store.con, [a.id for a, ev in events if ev == "updated"])
            handled = {i for i, st in got.items() if st != "open"}
        now = time.monotonic()
        cand = []
        for a, ev in events:
            if ev not in self.on or not self.match(a, self.meter_tags(a.meter_id)) or not self.applies(a, ev):
                continue
            if ev == "updated" and a.id in handled:
                self.counters["handled_skipped"] += 1
                continue
            cand.append((a, ev))
        # (al) an alert new to this run is new to this action too (nothing to read back) unless its
        # log may have it: done since the checkpoint this run resumed from (a restart gives them again),
        # or withdrawn in this run and found again
        fresh = set(report.new) - self._gone if self._old is not None else set()
        self._recall({a.id for a, ev in cand if not (ev == "opened" and a.id in fresh and a.id not in self._old)})
        self._gone.update(withdrawn)
        self._reopen.update(withdrawn)
        jobs = []
        for a, ev in cand:
            acts = self._acts.setdefault(a.id, set())
            if ev == "opened" and a.id in self._reopen:
                self._reopen.discard(a.id)
                if acts & {"ended", "withdrawn"}:   # (ral) told it closed: found again, a new opening
                    acts.clear()
                    self._limited = {k for k in self._limited if k[0] != a.id}
                    self.counters["reopened"] += 1
            if ev in self._every and not self._every[ev] and not acts:
                # (rle3: withdrawn; al: ended) never acted on it: no news of its end or withdrawal
                # (an ``ended_value`` would restore a load it never shed)
                self.counters[f"{ev}_untold"] += 1
                continue
            if ev == "updated" and acts & {"ended", "withdrawn"}:
                # (ah) told it closed, not open again for it (rewritten after its end; a head whose
                # pending follower keeps it open, for an action that waits for final alerts): an
                # ``updated`` (state "open") after its ``ended`` would be out of order
                self.counters["closed_skipped"] += 1
                continue
            self.counters["matched"] += 1
            key = (a.id, ev)
            if ev != "updated" and ev in acts:
                self.counters["already_done"] += 1
                continue
            why = self.limit.allow(a.meter_id, now) if self.sends(a, ev) else None
            if why is not None:
                self.counters["rate_limited"] += 1
                if key not in self._limited:   # once per alert and event, not at every step it grows
                    self._limited.add(key)
                    self._log(a, ev, "rate_limited", why, 0, 0.0)
                continue
            acts.add(ev)
            if ev in ("opened", "updated"):
                self._last[a.id] = (_told_version(a), a.id in pending)
            jobs.append((a, ev))
        at = datetime.now(timezone.utc)   # (ah) when these jobs were queued (actions_log.queued_at)
        try:
            self._pend([(a, ev) for a, ev in jobs if ev != "updated"], at)   # recorded before the worker has them
        except Exception as exc:  # noqa: BLE001 - a store error: the jobs still run, only not kept across a kill
            self.counters["pend_failures"] += 1
            log.warning("%s: cannot record %d job(s) as pending (%s: %s): run anyway, not kept if the watcher "
                        "is killed first", self.name, len(jobs), type(exc).__name__, exc)
        dropped = [(a, ev) for a, ev in jobs if not self._queue(a, ev, at)]
        if dropped:   # logged in one transaction (one each was a DuckDB commit on this thread per job)
            why = f"the worker's queue is full ({self.queue_size} jobs waiting)"
            self._log_all([(a, ev, "dropped", why, 0, 0.0, at) for a, ev in dropped])
        self._forget(engine)

    def _forget(self, engine) -> None:
        """(al) Forget the alerts the engine no longer holds (open, provisional, a head with a pending
        follower, a source's open health alert or edge report): ended or withdrawn, nothing more comes
        for them but what late readings or a continuation may bring, rarely, and that is read back
        from the store then (:meth:`_recall`). Memory holds the alerts alive, not every id of a
        watcher's life. An engine that keeps no open set (a stand-in) forgets nothing."""
        if not (self._acts or self._limited or self._last):
            return
        if getattr(engine, "open_ids", None) is None:
            return
        live = set(engine.open_ids)
        for n in ("health_open", "provisional", "_pending_final", "events_open"):
            live.update(getattr(engine, n, None) or ())
        with self._upd_lock:   # (ral) an updated job not logged yet: the store does not have it
            live.update(self._upd)
        gone = [i for i in self._acts if i not in live]
        for i in gone:
            del self._acts[i]
        for i in [i for i in self._last if i not in live]:
            del self._last[i]
        self._limited = {k for k in self._limited if k[0] in live}
        self.counters["forgotten"] += len(gone)

    def _recall(self, ids, pending: bool = True) -> None:
        """(al) What this action did for the ``ids`` it holds nothing of in memory (a watcher's first
        steps after a restart, an alert forgotten when it ended: :meth:`_forget`), from the store: the
        events logged ``ok``, ``refused`` or ``failed`` (same ``dry_run``) and, with ``pending``, the
        jobs queued and not logged yet. One statement per 500 ids, only for ids not in memory: an
        alert's opening and its end, not its every update (~1-15 ms at 0.1-1 M log rows)."""
        ask = sorted(i for i in ids if i not in self._acts)
        if not ask or self._cur is None:
            return
        got: dict[str, set[str]] = {i: set() for i in ask}
        with self._lock:
            for lo in range(0, len(ask), 500):
                part = ask[lo:lo + 500]
                qs = ", ".join("?" for _ in part)
                sql = (f"SELECT alert_id, event, coalesce(queued_at, done_at) AS t FROM actions_log WHERE "
                       f"action = ? AND dry_run = ? "
                       f"AND outcome IN ('ok', 'refused', 'failed') AND alert_id IN ({qs})")
                args = [self.name, self.dry_run, *part]
                if pending:
                    sql += f" UNION ALL SELECT alert_id, event, queued_at AS t FROM actions_pending WHERE action = ? " \
                           f"AND dry_run = ? AND alert_id IN ({qs})"
                    args += [self.name, self.dry_run, *part]
                # (ah) in the order they happened (queued): a step's jobs share their time, its
                # opening before its end (an alert new and closed in one step)
                order = " ORDER BY alert_id, t, CASE event WHEN 'opened' THEN 0 WHEN 'updated' THEN 1 WHEN " \
                        "'stopped' THEN 2 WHEN 'ended' THEN 3 ELSE 4 END"
                for i, e, _ in self._cur.execute(sql + order, args).fetchall():
                    # (ral) the last opening's events: one told again after its end or withdrawal
                    # (found again) starts anew
                    if e == "opened" and got[i] & {"ended", "withdrawn"}:
                        got[i] = set()
                    got[i].add(e)
        self._acts.update(got)
        self.counters["recalled"] += len(ask)

    def _feed(self) -> None:
        """Queue what the backlog holds, as far as the queue has room (the engine thread at each
        step, the worker after each job: each job is taken off the backlog once)."""
        while True:
            with self._bl_lock:
                try:
                    a, ev, at = self._backlog.popleft()
                except IndexError:
                    return
                try:
                    self._q.put_nowait((a, ev, at))
                except queue.Full:
                    self._backlog.appendleft((a, ev, at))
                    return
                k = self._behind.pop(a.id, 0) - 1
                if k > 0:
                    self._behind[a.id] = k
            self.counters["queued"] += 1

    def _queue(self, a: Alert, ev: str, at=None) -> bool:
        """Hand a job to the worker (``at``: when it was queued, as ``actions_pending`` has it); False
        when its queue is full (the job is dropped: the caller logs it)."""
        if ev == "updated":
            self._unlogged(a.id, 1)
        with self._bl_lock:
            if a.id in self._behind:   # (ah) in order, behind its alert's jobs an earlier run left
                self._backlog.append((a, ev, at))
                self._behind[a.id] += 1
                self.counters["queued_behind"] += 1
                return True
        try:
            self._q.put_nowait((a, ev, at))
        except queue.Full:
            if ev == "updated":
                self._unlogged(a.id, -1)
            self.counters["dropped"] += 1
            return False
        self.counters["queued"] += 1
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(self.close_timeout_s)
            left = []
            while True:
                try:
                    job = self._q.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    left.append(job)
            while True:    # (popleft: a worker still running a job may feed from it meanwhile)
                try:
                    left.append(self._backlog.popleft())
                except IndexError:
                    break
            # An opened/ended job it had no time for stays pending: the next start runs it (as
            # after kill -9; logged failed, it was never run). An updated one is not kept.
            kept = [(a, ev) for a, ev, _ in left if ev != "updated"]
            if kept:
                self.counters["left_pending"] += len(kept)
                log.warning("%s: %d job(s) not run before the watcher stopped: kept pending, run at its next start",
                            self.name, len(kept))
            gone = [(a, ev, "failed", "not run: the watcher stopped first", 0, 0.0, at) for a, ev, at in left
                    if ev == "updated"]
            self.counters["failed"] += len(gone)
            self._log_all(gone)
            if self._thread.is_alive():
                self.status = "stopped (a job still running)"
        try:
            self.shutdown()
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: closing: %s", self.name, exc)
        with self._lock:
            if self._cur is not None:
                self._cur.close()
                self._cur = None

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued job has run (tests, the benchmark); False on timeout."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)
        return not self._q.unfinished_tasks

    # ---- internals
    def _start(self, con, saved=None) -> None:
        """Start the worker and resume the jobs an earlier run left pending. ``saved``: when the
        checkpoint the engine resumed from was saved (None: none)."""
        ensure_log(con)
        self._cur = con.cursor()
        with self._lock:
            left = self._cur.execute(
                "SELECT alert_id, event, any_value(alert), min(queued_at) FROM actions_pending WHERE action = ? AND "
                "dry_run = ? GROUP BY alert_id, event ORDER BY min(queued_at)", [self.name, self.dry_run]).fetchall()
            # (al) the ids an alert the engine reports new may have in the log: none when this action
            # has logged nothing; those logged since the checkpoint resumed from (a restart reports
            # again the alerts first stored after it; a minute's margin); unknown without a checkpoint
            # (every new id is read back then)
            old = None
            if not self._cur.execute("SELECT 1 FROM actions_log WHERE action = ? AND dry_run = ? LIMIT 1",
                                     [self.name, self.dry_run]).fetchall():
                old = set()
            elif saved is not None:
                old = {r[0] for r in self._cur.execute(
                    "SELECT DISTINCT alert_id FROM actions_log WHERE action = ? AND dry_run = ? AND done_at >= "
                    "?::TIMESTAMPTZ - INTERVAL 1 MINUTE", [self.name, self.dry_run, saved]).fetchall()}
        self._old = None if old is None else old | {aid for aid, *_ in left}
        # (ral) withdrawn (by an earlier run, or a ``detect``) after this action last queued or logged
        # their opening: found again, read back and told opened anew if it was told them closed. (ah)
        # A store older than ``alerts_withdrawn`` gets it here, with its earlier withdrawals.
        from wattwatch.alerts import withdrawn as _withdrawn

        with self._lock:
            _withdrawn.ensure(self._cur, transaction=True)
        if "alerts_withdrawn" in dbtables.tables(self._cur):
            with self._lock:
                self._reopen = {r[0] for r in self._cur.execute(
                    "SELECT w.id FROM (SELECT id, max(withdrawn_at) AS t FROM alerts_withdrawn GROUP BY id) w "
                    "WHERE NOT EXISTS (SELECT 1 FROM actions_log l WHERE l.action = ? AND l.dry_run = ? AND "
                    "l.alert_id = w.id AND l.event = 'opened' AND coalesce(l.queued_at, l.done_at) > w.t) AND "
                    "NOT EXISTS (SELECT 1 FROM "
                    "actions_pending p WHERE p.action = ? AND p.dry_run = ? AND p.alert_id = w.id AND "
                    "p.event = 'opened' AND p.queued_at > w.t)",
                    [self.name, self.dry_run, self.name, self.dry_run]).fetchall()}
            self._gone |= self._reopen
        # (al) what it did before is read from the log as alerts come (_recall), not all at start (a
        # watcher's whole history: 0.47 s and ~670,000 ids held for 1 M log rows); here only for the
        # jobs left pending (one its log has done is not run again)
        self._recall({aid for aid, *_ in left}, pending=False)
        self._thread = threading.Thread(target=self._worker, name=f"action:{self.name}", daemon=True)
        self._thread.start()
        # Jobs queued by an earlier run that never logged their outcome (killed meanwhile): run now.
        for aid, ev, doc, at in left:
            if ev in self._acts.get(aid, ()):
                self._unpend(aid, ev)
                continue
            try:
                a = Alert.from_dict(json.loads(doc))
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("%s: a pending %s job of alert %s cannot be read (%s): dropped", self.name, ev, aid, exc)
                self._unpend(aid, ev)
                continue
            self._acts.setdefault(aid, set()).add(ev)
            self.counters["resumed"] += 1
            with self._bl_lock:
                self._backlog.append((a, ev, at))   # (queued by _feed: the queue's size does not drop them)
                self._behind[aid] = self._behind.get(aid, 0) + 1
        self._feed()

    def _worker(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                a, ev, at = job
                t0 = time.perf_counter()
                try:
                    res = self.perform(a, ev, self.dry_run)
                except Refused as exc:
                    res = Result("refused", str(exc), 0)
                except Exception as exc:  # noqa: BLE001 - an action never stops the watcher
                    res = Result("failed", f"{type(exc).__name__}: {exc}")
                ms = (time.perf_counter() - t0) * 1e3
                self.counters[res.outcome] += 1
                if res.outcome != "ok":
                    log.warning("%s: %s %s for alert %s: %s", self.name, ev, res.outcome, a.id, log_safe(res.detail))
                self._log(a, ev, res.outcome, res.detail, res.attempts, ms, at)
            except Exception as exc:  # noqa: BLE001 - the log itself failed: count it, go on
                self.counters["failures"] += 1
                log.warning("%s: cannot log an action: %s", self.name, exc)
            finally:
                if job is not None:
                    if job[1] == "updated":
                        self._unlogged(job[0].id, -1)
                    self._feed()     # room for a job of the backlog (before task_done: flush waits for it)
                self._q.task_done()

    def _unlogged(self, aid: str, n: int) -> None:
        """(ral) Count an ``updated`` job of ``aid`` handed to the worker (+1) or logged (-1)."""
        with self._upd_lock:
            k = self._upd.get(aid, 0) + n
            if k > 0:
                self._upd[aid] = k
            else:
                self._upd.pop(aid, None)

    def _log(self, a: Alert, ev: str, outcome: str, detail: str, attempts: int, ms: float, at=None) -> None:
        self._log_all([(a, ev, outcome, detail, attempts, ms, at)])

    def _log_all(self, rows: list[tuple]) -> None:
        """Log outcomes ``(alert, event, outcome, detail, attempts, ms[, queued_at])``, and end their
        pending records, in one transaction: a job is either pending or logged, whenever the watcher
        dies (one statement of each per 500 rows). ``queued_at`` None: now (a job logged as it is decided)."""
        with self._lock:
            if self._cur is None or not rows:
                return
            self._cur.execute("BEGIN TRANSACTION")
            try:
                for lo in range(0, len(rows), 500):
                    part = rows[lo:lo + 500]
                    self._cur.execute(f"INSERT INTO actions_log ({_LOG_COLS}) VALUES "
                                      + ", ".join("(?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, coalesce(?::TIMESTAMPTZ, "
                                                  "now()))" for _ in part),
                                      [v for a, ev, out, detail, attempts, ms, *at in part
                                       for v in (a.id, self.name, self.kind, ev, self.dry_run, out, detail[:2000],
                                                 attempts, round(ms, 3), a.meter_id, a.code, (at or [None])[0])])
                    ended = [f"{a.id}|{ev}" for a, ev, *_ in part if ev != "updated"]
                    if ended:
                        self._cur.execute("DELETE FROM actions_pending WHERE action = ? AND dry_run = ? AND "
                                          f"alert_id || '|' || event IN ({', '.join('?' for _ in ended)})",
                                          [self.name, self.dry_run, *ended])
                self._cur.execute("COMMIT")
            except BaseException:
                self._cur.execute("ROLLBACK")
                raise

    def _pend(self, jobs: list[tuple[Alert, str]], at) -> None:
        """Record jobs as queued at ``at`` (see the module): one statement per 500 (one per job cost
        ~2.7 ms each on the engine's thread)."""
        with self._lock:
            for lo in range(0, len(jobs) if self._cur is not None else 0, 500):
                part = jobs[lo:lo + 500]
                self._cur.execute("INSERT INTO actions_pending VALUES "
                                  + ", ".join("(?, ?, ?, ?, ?, ?)" for _ in part),
                                  [v for a, ev in part for v in (a.id, self.name, ev, self.dry_run, at, a.to_json())])

    def _unpend(self, aid: str, ev: str) -> None:
        with self._lock:
            if self._cur is not None:
                self._cur.execute("DELETE FROM actions_pending WHERE alert_id = ? AND action = ? AND event = ? "
                                  "AND dry_run = ?", [aid, self.name, ev, self.dry_run])

    def payload(self, a: Alert, event: str, now: float | None = None) -> bytes:
        """The JSON every kind sends: the event, this action, when (``now``, Unix seconds), and the
        alert (strict JSON)."""
        t = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now, unit="s", tz="UTC")
        doc = {"event": event, "state": state_after(a, event), "action": self.name,
               "sent_at": t.isoformat(timespec="milliseconds"), "dry_run": self.dry_run,
               "alert": json.loads(a.to_json())}
        return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()

    def values(self, a: Alert, event: str) -> dict:
        return {"id": a.id, "meter_id": a.meter_id, "code": a.code, "severity": a.severity,
                "detector": a.detector, "event": event, "action": self.name}

    def view(self) -> dict:
        return {**super().view(), "queue": self._q.qsize()}


def _told_version(a: Alert) -> tuple:
    """(al) What an ``updated`` tells of an alert: its end, score, severity and message."""
    return (a.end, a.score, a.severity, a.message)


def state_after(a: Alert, event: str) -> str:
    """(le3) The alert's state after ``event``, in the InfluxDB sink's terms (``alert_states``)."""
    if event in ("withdrawn", "ended") and "withdrawn" in a.evidence:
        return "withdrawn"
    return {"opened": "open", "updated": "open"}.get(event, event)


def _stored_alert(con, aid: str) -> Alert | None:
    """An alert from the store (one that ended in this run but opened before a restart)."""
    from wattwatch.alerts.model import record

    df = con.execute("SELECT * FROM alerts WHERE id = ?", [aid]).df()
    if not len(df):
        return None
    return Alert.from_dict(record(df.to_dict("records")[0]))
