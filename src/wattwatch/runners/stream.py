"""The stream runner (DESIGN §2): live readings judged in small pieces by the same core, with carried
state, alerts upserted as they open, grow and end, and a checkpoint in the store.

One step of :class:`StreamEngine`:

1. **Store.** The readings that arrived (one poll cycle, or whatever queued up meanwhile) are
   ingested into the DuckDB store in one transaction — checked, de-duplicated and merged exactly
   as ``wattwatch ingest`` does (a reading delivered twice is one reading). The source is told
   (:meth:`Source.committed`; MQTT acknowledges the messages then) only at the end of the step,
   once the outputs had its readings and alerts (step 4): a watcher that dies before gets them
   again, so every output has them at least once. (ovl) The ingest returns the rows it stores as
   soon as they are known; its writes and COMMIT run in the store's worker thread
   (``StreamConfig.ingest_thread``) while the step judges those rows, and every statement after
   (the alerts' upsert first) waits for that COMMIT; writes that fail there are the step's error.
2. **State.** A meter with no state in the store is profiled once its own first ``profile_days``
   are stored (the window ``detect`` uses on a long enough history), and that state is kept.
3. **Judge.** Per meter, the stored readings after the last one judged (up to ``hold_s`` before
   its newest, so that a late copy merges before its reading is judged) are fed to a
   :class:`~wattwatch.detect.stitch.Stitcher`: the core on the new readings plus the carried
   tail, so every reading gets the score, and every alert the id and span, that ``detect`` on the
   whole history gives. **Tiered** (``slow_every_s > 0``, the default): the detectors whose
   effective reach back and ahead is short (``fast_reach_s``; :func:`fast_tier`) judge every step
   with their own stitcher and short tail; a second stitcher with every detector judges what
   queued for it when the fleet's newest judged reading enters a new ``slow_every_s`` period of
   data time (after the fast tier's alerts are written; in a worker thread, ``slow_thread``, so
   the next fast steps do not wait for it: its alerts are written by the first step or checkpoint
   after it finished), on a flush, at a restart and before a re-judging (those in the step). It is
   the one checkpointed and rewound; the fast tier adopts its carry
   (:meth:`StreamEngine._adopt`). Of its alerts only the slow detectors' are taken.
4. **Alerts.** New and grown alerts are upserted into the store's alerts table (stable ids; an
   acknowledged alert keeps its status); an alert that can no longer grow is reported ended. Then
   the outputs (sinks, actions) get the step's readings and alerts. Health alerts sources raise
   about their devices stay open until a version says ``ended``; the open ones are read back from
   the store at start and handed to their sources (:meth:`StreamEngine.resume_sources`).
5. **Checkpoint** (every ``checkpoint_s`` and on stop; not after a step that raised, which stops
   the run as ``kill -9`` would: its batches were not acknowledged): the stitcher's carry (its
   tail of readings as Parquet, clean points, positions), the time up to which each meter was judged and each
   source's position, in one row of ``stream_checkpoint``. A restart (even after ``kill -9``)
   loads it, judges what the store holds beyond it, and sources resume from their positions;
   readings re-delivered since are duplicates to the store and alerts found again are the same
   ids, so nothing is lost and nothing doubled.

Readings of a meter that arrive older than its last judged reading are stored (counted as
``late``) and the meter is re-judged from the store around them (:mod:`wattwatch.runners.rejudge`);
so is a meter whose alert was acknowledged or cleared, once its detector has re-learned. A copy of
a stored reading is late data only when it fills a channel or gives another value; one repeating it
(a redelivery, a replay) is counted as ``duplicates`` and re-judges nothing (:meth:`StreamEngine._late`).

:func:`run` is the asyncio loop around it: sources push batches into an inbox, one task takes
everything queued (a micro-batch), the engine works in a thread so pollers keep their cadence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import io
import json
import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wattwatch.alerts import store as alert_store
from wattwatch.alerts import withdrawn
from wattwatch.alerts.model import Alert
from wattwatch.detect import core
from wattwatch.detect.stitch import Stitcher, Stitchers, dense_columns
from wattwatch.runners import carrycodec, rejudge
from wattwatch.schema import utc_times
from wattwatch.tomlfile import flag, number

log = logging.getLogger("wattwatch.watch")

# 2: the carried closed hours (column ``hours``); a layout-1 checkpoint (none carried) still loads.
# 3: the tail and the closed hours as compact Parquet (runners/carrycodec.py: stamps and register
# values as delta-encoded integer counts, zstd); layouts 1 and 2 (plain Parquet) still load.
# 4: (ck) no reading the store holds: per meter of the tail the span it holds (first and last stamp),
# its rows and their fingerprint (meta ``reread``), re-read from the store's readings at resume and
# checked; the tail blob holds only the meters whose readings the store does not hold raw (a
# compaction cut after their first carried reading). Layouts 1-3 still load.
CHECKPOINT_VERSION = 4
_DDL = ("CREATE TABLE IF NOT EXISTS stream_checkpoint (name VARCHAR PRIMARY KEY, version INTEGER, "
        "saved TIMESTAMPTZ, meta VARCHAR, tail BLOB, hours BLOB)")
_DDL_HOURS = "ALTER TABLE stream_checkpoint ADD COLUMN IF NOT EXISTS hours BLOB"
# (pv) The provisional alerts a step withdrew (the alert as withdrawn, JSON), kept until a checkpoint
# after that step's outputs: a row deleted in the step and a watcher killed before its outputs ran
# would otherwise leave the outputs that were told ``new`` never told ``ended`` (the restart has
# neither the row nor, for one written after the last checkpoint, the id).
_DDL_WITHDRAWN = ("CREATE TABLE IF NOT EXISTS stream_withdrawn (name VARCHAR, id VARCHAR, alert VARCHAR, "
                  "withdrawn_at TIMESTAMPTZ)")
# (le2) A re-judging's withdrawals are kept there too (rejudge._keep_for_outputs); ``ended_before``: the
# alert had ended before its withdrawal (told ``ended`` then: its withdrawal is not an ``ended``).
_DDL_WITHDRAWN_ENDED = "ALTER TABLE stream_withdrawn ADD COLUMN IF NOT EXISTS ended_before BOOLEAN"
# (le3) The requests to re-judge a meter from ``from_s`` (epoch s; ``withdraw_s``: withdraw from at least
# there, NULL: no bound) made since the last checkpoint: a late reading's, written in the transaction
# that stores it (``Store.ingest``'s ``then``); a re-learned reset's, before its state is saved. The
# checkpoint forgets them (its ``rewinds`` hold those not run yet; the carry, those run); a restart
# re-judges what they ask (rejudge.resume_requests). Before, only the checkpoint's ``rewinds`` kept a
# request: a watcher killed between the late readings' ingest and the checkpoint after their re-judging
# lost it (its restart's carry predates them and their re-delivery is a duplicate): an alert they shrank
# stayed at its old size, one they would have withdrawn stayed in the store.
_DDL_REJUDGE = ("CREATE TABLE IF NOT EXISTS stream_rejudge (name VARCHAR, meter_id VARCHAR, from_s DOUBLE, "
                "withdraw_s DOUBLE, asked_at TIMESTAMPTZ)")
NEG = -(1 << 62)  # "nothing judged yet" in epoch microseconds


@dataclass
class StreamConfig:
    """``hold_s``: a reading is judged once its meter has a stored reading ``hold_s`` later (0:
    at once; raise it when copies of a reading arrive late). ``checkpoint_s``: seconds between
    checkpoints (alerts are written every step regardless). ``max_pending``: batches queued
    before a paced source waits."""

    hold_s: float = 0.0
    checkpoint_s: float = 5.0
    max_pending: int = 64
    # The tiered step (see the module): detectors whose effective reach back and ahead
    # (core.reaches: their own plus their blockers' reach and alert horizons, readings counted at
    # the meter's cadence) is at most ``fast_reach_s`` on every meter judge every step; the
    # others, every time the newest judged reading of the fleet enters a new period of
    # ``slow_every_s`` seconds of data time (and on flush, restart, late readings, resets).
    # ``slow_every_s = 0``: every detector every step (one tier).
    slow_every_s: float = 3600.0
    fast_reach_s: float = 43200.0
    # The slow tier's clock-driven judgement runs in a worker thread on what queued for it, so
    # the fast steps go on meanwhile; its alerts are written by the first step (or checkpoint)
    # after it finished. False: in the step, after the fast tier's alerts (the fast step waits).
    slow_thread: bool = True
    # Provisional alerts (issue 16, docs/live-log.md lat1/prov): an alert of a detector whose
    # scores are final but for a long blocker's decision (a blanking horizon beyond
    # ``fast_reach_s``: loose_ct's 23-83 h) is written at once, marked ``evidence.provisional``,
    # and withdrawn if the final judgement does not find it. False: such alerts wait for the
    # final verdict (a day late at 1-15 min, four days at hourly).
    provisional: bool = True
    # (ovl, issue 16) The store's writes of a step's readings (their INSERT, the meters row,
    # ingest_log, the COMMIT and its WAL sync) run in the store's worker thread while the step
    # judges the rows the ingest returned; the step's alerts are written after that COMMIT (the
    # store's connection waits for it), so none is ever stored for readings the store lost.
    ingest_thread: bool = True

    # (not a field) what from_dict asks of each number
    _BOUNDS = {"hold_s": {"lo": 0}, "checkpoint_s": {"lo": 0}, "max_pending": {"whole": True, "lo": 1},
               "slow_every_s": {"lo": 0}, "fast_reach_s": {"lo": 0}}

    @classmethod
    def from_dict(cls, d: dict | None) -> "StreamConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"[stream]: unknown parameter(s) {sorted(unknown)}")
        # bool("false") is True, float("x") names no key, TOML's nan and inf are floats (hold_s = inf
        # judged nothing ever, checkpoint_s = nan never checkpointed, max_pending = inf raised
        # OverflowError: rev41), 2.5 batches is no count: every value checked naming its key.
        return cls(**{k: flag(f"[stream] {k}", v) if type(getattr(cls, k)) is bool
                      else number(f"[stream] {k}", v, **cls._BOUNDS[k]) for k, v in d.items()})


@dataclass
class StepReport:
    """What one step did."""

    readings: int = 0                  # arrived in this step
    stored: int = 0                    # new rows in the store
    judged: int = 0                    # readings fed to the core
    alerts: list[Alert] = field(default_factory=list)   # new or changed (what was upserted)
    new: list[str] = field(default_factory=list)        # ids seen for the first time
    ended: list[str] = field(default_factory=list)      # ids that can no longer grow
    notices: list[str] = field(default_factory=list)
    written_at: float = 0.0            # monotonic time the alerts were committed
    # The tiers that judged in this step ("fast", "slow", or "all": every detector, one tier or a
    # resync) and when each committed its alerts (monotonic).
    written: dict[str, float] = field(default_factory=dict)
    # Of the alerts, per id the tier that wrote it.
    tier_of: dict[str, str] = field(default_factory=dict)
    slow: bool = False                 # the slow tier (every detector) started judging in this step
    slow_cpu_s: float = 0.0            # CPU seconds of the slow judgements taken in this step
    slow_started: int = 0              # slow judgements started in this step
    slow_taken: int = 0                # slow judgements whose alerts this step wrote (in start order)
    # Provisional alerts (StreamConfig.provisional) that the final judgement found (their flag
    # cleared: an action that waits for final alerts opens them now) and those it withdrew (id ->
    # the alert as last written, ``evidence.withdrawn`` the reason; also in ``ended``).
    confirmed: list[str] = field(default_factory=list)
    withdrawn: dict[str, Alert] = field(default_factory=dict)
    # (pc) Provisional alerts whose condition ended in this step (the readings that raised them are
    # back to normal: no longer open by the post-rules, the hold included) while their final verdict
    # is still pending: told at once (the console, InfluxDB's ``state="stopped"``, actions with
    # ``on = [.., "stopped"]``); their ``ended`` comes with the verdict (confirmed closed, withdrawn,
    # or undecided), once.
    stopped: list[str] = field(default_factory=list)
    # (ah) Alerts told ended before (by this run) that are open again in this step: a head a
    # continuation (a follower, final or pending) makes grow again. Told as an opening again (the
    # console's line, actions told its end), so that its next ``ended`` follows an opening.
    reopened: list[str] = field(default_factory=list)


def _parquet(df: pd.DataFrame | None) -> bytes | None:
    """``df`` as Parquet bytes (None when empty)."""
    if df is None or not len(df):
        return None
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


class StreamEngine:
    """Judges readings as they are stored; see the module. Not thread-safe: one caller at a time."""

    def __init__(self, store, detectors: list, config=None, stream: StreamConfig | None = None,
                 name: str = "watch"):
        from wattwatch.detect import state
        from wattwatch.detect.engine import EngineConfig

        self.store = store
        self.cfg = config or EngineConfig()
        self.scfg = stream or StreamConfig()
        self.name = name
        self.dets = core.order(list(detectors))
        self.counters: Counter = Counter()
        self.open_ids: set[str] = set()
        self.alerts: dict[str, Alert] = {}       # latest version of every alert this run touched
        # (xd) The cross-detector continuation step (a later consumption alert continuing an
        # earlier one: one alert under the earlier's id), carried from step to step as ``detect``
        # runs it once (engine.continuation_of; None: off).
        from wattwatch.detect.continuation import Continuations
        from wattwatch.detect.engine import continuation_of

        cc = continuation_of(self.cfg)
        self._cont = Continuations(cc) if cc is not None else None
        self.health_open: set[str] = set()       # open alerts sources raised about their devices
        # The silence watch (runners/silence.py: meters that stopped answering), set by ``api.watch``;
        # its alerts are health alerts (add_health), never the stitcher's.
        self.silence = None
        self._silence_ck: dict = {}              # its checkpointed part (push meters' cadences)
        self._written: dict[str, tuple] = {}     # what was last written of each
        # Alerts the store keeps acknowledged or cleared, of those whose status this run has read
        # (``_checked``: the first time a stitcher gave them) or set (``mark_settled``: a request
        # while the watcher holds the store, the only way a status changes meanwhile).
        self.settled: set[str] = set()
        self._checked: set[str] = set()
        self.notices: list[str] = []
        self._start_notes: list[str] = []         # said at start, reported by the first step
        self.sources: dict[str, dict] = {}       # checkpointed source positions
        # When the checkpoint this run resumed from was saved (None: none): an alert the store
        # first kept after it may not have reached the outputs (the run stopped between the
        # store and the outputs, and a source delivers it again): still new then.
        self._resumed_saved = None
        self._restarted = False   # (rrst2) resumed, the first resync not done yet: rewinds wait for it
        self._kept_before: set[str] = set()      # ids the store first kept by then (not new: _stored_before)
        self._last_ck = time.monotonic()
        con = store.con
        con.execute(_DDL)
        con.execute(_DDL_HOURS)
        con.execute(_DDL_WITHDRAWN)
        con.execute(_DDL_WITHDRAWN_ENDED)
        con.execute(_DDL_REJUDGE)
        alert_store.ensure_tables(con)
        cat = store.catalogue()
        known = [str(m) for m in cat["meter_id"]]
        # Per meter with compacted hours (``store compact``): the end of its last compacted hour
        # (epoch s). A meter whose carry starts at its first raw reading after it is judged as
        # the middle of its data, as ``detect`` judges it (Stitcher.cut; the fast tier's share it).
        self.cut: dict[str, float] = store.compaction_cuts()
        # A meter whose readings are all compacted (none raw now) keeps its stored state too: its
        # raw readings may go on later, judged with it (as ``detect`` does; a checkpoint counts it
        # profiled, so it would not be profiled again and every detector would skip it).
        known += sorted(set(self.cut) - set(known))
        # (rhd3) said at start too (a state written by another version is profiled again: the operator is told so)
        for note in state.load(con, self.dets, known) + state.load_fleets(con, self.dets):
            self._say(note)
        # Per meter: first and last stored reading (epoch µs), last judged reading.
        self.first: dict[str, int] = {}
        self.last: dict[str, int] = {}
        for m, a, b in zip(cat["meter_id"].astype(str), cat["first_ts"], cat["last_ts"]):
            self.first[m] = _us(a)
            self.last[m] = _us(b)
        self.fed: dict[str, int] = {}
        # The rows the store took from add() and no step has judged yet, and per meter the time
        # f such that every stored reading of it after f is among them (a step takes a window
        # starting at or after f from here instead of reading it back from the store).
        self.handed: pd.DataFrame | None = None
        self.exact: dict[str, int] = {}
        self._norms: dict = {}                    # the live ingest's normalisers (pipeline.ingest_live)
        self._paced: dict = {}                    # (lc) per source: its poll interval (Source.poll_paced)
        self._rejects_said: Counter = Counter()   # per source: readings rejected (the log says some)
        self._cad_new: set[str] = set()           # meters with readings since the last cadence check
        self._cad_said: set[str] = set()          # meters said to come at another cadence (once each)
        self._cad_at = NEG                        # data time (µs) of the last cadence check
        self._cad_newest = NEG                    # the newest accepted reading's time (µs), any meter
        self.stitcher = Stitcher(self.dets, keep_scores=False, compact_readings=True, cut=self.cut,
                                 provisional=self.scfg.fast_reach_s if self.scfg.provisional else None)
        # The provisional alerts written and neither found by a final judgement nor withdrawn yet
        # (id -> the version written; :meth:`_take_provisional`).
        self.provisional: dict[str, Alert] = {}
        # Per provisional id: the greatest end and score written of it (what the store keeps: its
        # upsert keeps the greatest), while it is provisional.
        self._prov_max: dict[str, tuple[pd.Timestamp, float]] = {}
        # (pf) Final heads written as their merged version with a provisional follower (a member
        # ``pending``: :meth:`Continuations.pending`): head id -> the version written, and the
        # greatest end and score written of it. Rewritten at each judgement of their meter; a
        # follower not given again puts the head back to its final version (its end and score too).
        self._pending_final: dict[str, Alert] = {}
        self._follows: dict[str, tuple[str, str]] = {}   # provisional follower id -> (meter, the head it was given under)
        self._pending_max: dict[str, tuple[pd.Timestamp, float]] = {}
        # (al) Of those heads, the ones whose pending follower is open by the last judgement of their
        # meter: open (``open_ids``: the console, the dashboard, InfluxDB's state) though their own
        # final part closed, until the follower's verdict (its final version keeps the head open, or
        # the head goes back to its own version and ends then). ``_final_open``: the open ids the
        # last final judgement gave (without these).
        self._pending_open: set[str] = set()
        self._final_open: set[str] = set()
        # (ah) Final alerts this run told ended (by their open set, a pending follower's verdict, a
        # provisional one confirmed closed): one open again is told so (StepReport.reopened). Not a
        # provisional alert confirmed open: never told ended. (Grows with the alerts that end, as
        # ``alerts`` does, and no further (rah): a withdrawal drops its id from both; an id found
        # again after its withdrawal is new, not reopened.)
        self._told_closed: set[str] = set()
        # Provisional ids read from the store at a restart that the outputs may not have had (first
        # written after the last checkpoint, or no checkpoint): reported new when given again.
        self._prov_unsent: set[str] = set()
        # (pv) Provisional alerts withdrawn while acknowledged or cleared (their rows kept, saying
        # withdrawn; id -> that version): one the final judgement makes after all becomes the final
        # alert (its version written, status kept, the withdrawn and provisional marks gone).
        self._withdrawn_kept: dict[str, Alert] = {}
        # (pv) Of the provisional ids, those whose alert may still grow (the last judgement of their
        # meter said so; one read back at a restart counts until its meter is judged again): the
        # console lists them with the open ones.
        self.provisional_open: set[str] = set()
        # (prov) Provisional ids that were open (may still grow) at some step: told ended when a final
        # judgement confirms them closed (:meth:`_take_provisional`).
        self._prov_opened: set[str] = set()
        # (pc) Provisional ids told ``stopped`` (StepReport.stopped) and not open again since: not told
        # again (a restart reads them from the checkpoint); one that grows again is told again when it stops.
        self._prov_stopped: set[str] = set()
        # (pc) the first step ends the provisional alerts read back whose meters were compacted since
        self._undecided_due = True
        self._carry_forgotten: set[str] = set()   # (meters _restart_compacted forgot the carry of)
        # The tiered step: ``stitcher`` judges with every detector (the slow tier's clock; what
        # is checkpointed and what re-judging rewinds), ``fast`` with the fast tier only, every
        # step. ``slow_fed``: per meter the last reading the full stitcher judged; ``pending``:
        # the pieces judged by the fast tier only since.
        self.tiered = self.scfg.slow_every_s > 0
        # The fast tier: a stitcher per group of its detectors that no blocking links, each with
        # the channels they read and the tail their reach needs (stitch.Stitchers).
        self.fast: Stitchers | None = None
        self.fast_names: frozenset[str] = frozenset()
        self.pending: list[pd.DataFrame] = []
        self.slow_fed: dict[str, int] = {}
        self._slow_mark: float | None = None      # the slow clock's period it last ran in
        self._resync = True                       # the fast tier adopts its carry before judging
        self._resyncing = False                   # (the resync's own judgement is taking its alerts)
        self._tiers_for = 0                       # profiled meters the tiers were split for
        self._open_tier: dict[str, set[str]] = {"fast": set(), "slow": set()}
        self._det_of: dict[str, str] = {}         # alert id -> detector
        # The slow tier's worker (StreamConfig.slow_thread): one job at a time, the full
        # stitcher's feed of what queued; only the worker touches the full stitcher (and the
        # detectors' state is not changed) while it runs. ``_held``: what was taken outside a
        # step (a checkpoint), reported by the next step.
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._job: tuple | None = None            # (future, tier, piece, fed, mark)
        self._held: StepReport | None = None
        # A judgement of the full stitcher that raised: its carry may be half-fed, so no
        # checkpoint is written after it (a restart resumes from the last good one).
        self._failed: BaseException | None = None
        # (ovl) The error of an ingest's writes in the store's worker (StreamConfig.ingest_thread):
        # the engine raises it (then says it cannot go on) instead of stepping or checkpointing.
        self._ingest_failed: BaseException | None = None
        self.profiled: set[str] = {m for m in known if any(m in getattr(d, "state_", {}) for d in self.dets)}
        self._ck_provisional: list[str] = []
        self._ck_prov_opened: list[str] | None = None   # (rprov) the checkpoint's _prov_opened, if it has one
        self._ck_prov_stopped: list[str] = []           # (pc) the checkpoint's _prov_stopped
        self.resumed = self._load_checkpoint()
        # (rhd3) A meter a detector holds no state for is profiled again (``_profile_ready``), as ``detect``
        # profiles it: one whose stored state was dropped (written by another version: ``state_version``
        # 6 -> 7 of baseline_macd) counted profiled by the other detectors' state or the checkpoint, and
        # that detector skipped it for good ("lack state (never fitted)").
        for d in self.dets:
            self.profiled -= self.profiled - set(getattr(d, "state_", {}))
        if self.resumed and self._cont is not None:
            self._load_continuations()
        m_prov = self._ck_provisional
        # The health alerts sources raised in earlier runs that the store keeps open (id -> alert):
        # open again here, handed to their sources at the start of a run (resume_sources).
        self._health_stored: dict[str, Alert] = {}
        # (le) lost outlets retired (cleared: runners/silence.py) by an earlier run: meter -> (source, end us)
        self._retired_stored: dict[str, tuple[str, int]] = {}
        self._health_gone: list[Alert] = []        # of sources no longer configured: ended by the next step
        self._load_health()
        # (le2) The edge reports that say their meter is still in the state reported (tamper, noisy
        # signal: sources/tamper.py ``ongoing``) until its leaving report: id -> the latest version.
        # The console lists them among the open alerts; read back from the store at start.
        self.events_open: dict[str, Alert] = {}
        self._load_events_open()
        self._load_provisional(m_prov)
        self._load_open_detectors()
        # A checkpoint written before a compaction whose cut lies beyond where it judged a meter:
        # the readings between are hourly rows now, so its carry cannot go on (it would read them
        # as lost readings): the meter starts afresh at its first raw reading, as ``detect``.
        self._restart_compacted()
        # The meters the carry does not hold yet start at their first raw reading: with compacted
        # hours, the closed hours baseline_macd reaches back to are taken from them (as ``detect``).
        held = set() if self.stitcher.tail is None else set(self.stitcher.tail["meter_id"].astype(str).unique())
        fresh = sorted(m for m in self.cut if m not in held and self.stitcher.origin.get(m, True))
        fed = self.cut_hours(fresh)
        # Said once at start (logged, and in the first step's notices, as ``detect`` says it): which
        # detectors the compaction limits on the meters judged from their cut.
        judged = [m for m in fresh if m in self.first]
        if judged:
            from wattwatch import api

            cad = self.store.catalogue(judged).set_index("meter_id")["cadence_s"].reindex(judged).to_numpy(float)
            back = api._reach_back(core.reaches(self.dets, judged), api._known_cadence(cad))
            self._say(api._compacted_notice(self.dets, judged, back, fed))
        self.dirty: set[str] = set(self.profiled)  # judge what the store holds beyond the checkpoint
        rejudge.attach(self)                       # late readings and resets to re-judge (rejudge.py)
        rejudge.resume_requests(self)              # (le3) and those the last run asked after its checkpoint
        if self._held is not None:                 # (le2) a re-judging's withdrawals the last run made
            rejudge.resume_withdrawn(self, self._held.withdrawn)

    def _restart_compacted(self) -> None:
        """Forget the checkpointed carry of each meter judged only up to before its compaction cut
        (:attr:`cut`): its readings up to the cut are no longer raw, so it is judged again from its
        first raw reading after it, as the middle of its data (the stitcher's ``cut``). Its alerts
        found before stay in the store as they were (``detect`` keeps them too)."""
        st = self.stitcher
        gone = sorted(m for m, c in self.cut.items() if m in self.fed and self.fed[m] < int(round(c * 1e6)))
        if not gone:
            return
        st.forget(gone)
        self._carry_forgotten = set(gone)
        self.counters["compacted_restarts"] += len(gone)
        since = pd.Timestamp(min(self.fed[m] for m in gone), unit="us", tz="UTC").isoformat()
        self._say(f"{len(gone)} meter(s) (e.g. {', '.join(gone[:3])}) were compacted beyond where this watcher's "
                  f"checkpoint had judged them (up to {since} at the earliest): their readings from there to their last "
                  "compacted hour were never judged live; they are judged again from their first raw reading after it")

    def _after_cut(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` without readings of a meter before its compaction cut: a late reading for a
        compacted hour stays raw until the next compaction and is not judged (``detect`` does not
        load it: judged alone, the compacted hours around it read as days of lost readings)."""
        if not self.cut or df is None or not len(df):
            return df
        c = pd.Series(self.cut, dtype=float).reindex(df["meter_id"].astype(str).to_numpy()).to_numpy()
        t = df["ts"].to_numpy("datetime64[us]").astype(np.int64) / 1e6
        keep = ~(t < c)   # NaN (no cut) compares False
        if keep.all():
            return df
        self.counters["late_compacted_skipped"] += int((~keep).sum())
        return df[keep].reset_index(drop=True)

    def cut_hours(self, meters: list[str]) -> set[str]:
        """The full stitcher's carried closed hours of ``meters`` with compacted hours, from
        their compacted hours (``api._compacted_hours``, as ``detect`` feeds baseline_macd): for
        meters whose carry starts afresh at their first raw reading after the cut. Returns the
        detectors fed."""
        ms = [m for m in meters if m in self.cut]
        per = self.stitcher.hours
        if not ms or not per:
            return set()
        from wattwatch import api

        got = api._compacted_hours(self.store, self.dets, ms, {m: self.cut[m] for m in ms}, core.reaches(self.dets, ms))
        for dn, cs in got.items():
            if dn in per:
                per[dn].update(cs)
        return {dn for dn in got if dn in per}

    def _say(self, note: str) -> None:
        """A notice of the engine's start: logged now, reported by the first step."""
        log.info("%s: %s", self.name, note)
        self.notices.append(note)
        self._start_notes.append(note)

    # ------------------------------------------------------------------------------ checkpoint

    def _load_checkpoint(self) -> bool:
        # (fetchall: a result left open after fetchone keeps the connection busy for what follows)
        rows = self.store.con.execute("SELECT version, meta, tail, hours, saved FROM stream_checkpoint WHERE name = ?",
                                      [self.name]).fetchall()
        if not rows:
            return False
        row = rows[0]
        version, meta, tail, hours, saved = row
        if version not in (1, 2, 3, CHECKPOINT_VERSION):
            raise ValueError(f"{self.store.path}: checkpoint {self.name!r} was written by another version "
                             f"(layout {version}, this is {CHECKPOINT_VERSION}); drop it to start afresh")
        m = json.loads(meta)
        st = self.stitcher
        st.origin = m["origin"]
        st.n_before = m["n_before"]
        st.since = {d.name: m["since"].get(d.name, {}) for d in self.dets}
        st.emitted = {d.name: m["emitted"].get(d.name, {}) for d in self.dets}
        st._said = set(m["said"])
        self.counters.update(m.get("counters", {}))
        self.rewinds = {k: tuple(v) for k, v in m.get("rewinds", {}).items()}
        parts = [] if tail is None else [carrycodec.read(tail)]
        if m.get("reread"):
            # (ck) layout 4: the spans the store holds; not those of meters compacted beyond where the
            # checkpoint judged them (their carry is forgotten: _restart_compacted)
            gone = {k for k, c in self.cut.items() if k in m["fed"] and int(m["fed"][k]) < int(round(c * 1e6))}
            parts.append(self._reread(m["reread"], skip=gone))
        if parts:
            t = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            t["meter_id"] = t["meter_id"].astype(str)
            if len(parts) > 1:
                t = t.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
            st.tail = t
            st.stale = set(t["meter_id"].unique())  # their open alerts are known once judged again
        st.load_hour_carry(None if hours is None else carrycodec.read(hours))
        self.fed = {k: int(v) for k, v in m["fed"].items()}
        self.slow_fed = dict(self.fed)
        self.profiled |= set(m["profiled"])
        self.open_ids = set(m["open"])
        self.sources = m["sources"]
        self._resumed_saved = saved
        self._restarted = True
        self._ck_provisional = list(m.get("provisional", []))
        self._ck_prov_opened = m.get("provisional_opened")
        self._ck_prov_stopped = list(m.get("provisional_stopped", []))
        self._silence_ck = m.get("silence") or {}
        return True

    def _reread(self, spans: dict, skip: set[str] = frozenset()) -> pd.DataFrame:
        """(ck) The carried readings of a layout-4 checkpoint, re-read from the store's readings: per
        meter its span ``[first, last]`` (epoch µs) with the checkpoint's columns, as the carried tail
        held them (:meth:`_reread_split`). Each meter's rows are checked against the checkpoint's
        count and fingerprint (:func:`carrycodec.fingerprint`): a meter whose stored readings in its
        span changed after the checkpoint (late readings or a copy filling one: their re-judging
        request, ``stream_rejudge``, re-judges it from the store at the first steps, as before; a
        compaction, readings deleted, a wide mapping's late readings, whose request is not kept) is
        carried as the store holds it now and re-judged from the start of its span (a rewind, as a
        late reading's), and said. ``skip``: meters not re-read."""
        cols = list(spans["columns"])
        sel = [i for i, x in enumerate(spans["meters"]) if str(x) not in skip]
        ms = [str(spans["meters"][i]) for i in sel]
        first = np.asarray(spans["first"], np.int64)[sel]
        last = np.asarray(spans["last"], np.int64)[sel]
        spans = {k: [spans[k][i] for i in sel] for k in ("n", "hash")}
        w = pd.DataFrame({"meter_id": ms, "start": pd.to_datetime(first, unit="us", utc=True),
                          "end": pd.to_datetime(last + 1, unit="us", utc=True)})
        got = self.store.query_windows(w, columns=cols) if ms else None
        if got is None or not len(got):
            got = pd.DataFrame({"meter_id": pd.Series([], dtype=object),
                                "ts": pd.Series([], dtype="datetime64[us, UTC]"),
                                **{c: pd.Series([], dtype=np.float64) for c in cols}})
        if list(got.columns) != ["meter_id", "ts", *cols]:
            got = got[["meter_id", "ts", *cols]]
        # (rck) no copy of every column when the store gave them in order with a plain index
        # (query_windows does): at 2,000 meters x 2,880 readings (0.66 GB as a frame) the two copies
        # took the resume's peak from 1.75 to 2.87 GB over its start (layout 3's decode: 2.20 GB)
        ix = got.index
        if not (isinstance(ix, pd.RangeIndex) and ix.start == 0 and ix.step == 1):
            got = got.reset_index(drop=True)
        names, starts = _runs(got["meter_id"])
        ends = np.r_[starts[1:], len(got)].astype(np.int64)
        have = {m: (int(e - s), int(h)) for m, s, e, h in
                zip(names, starts, ends, carrycodec.fingerprint(got, ["ts", *cols], starts))}
        bad = [m for m, n, h in zip(ms, spans["n"], spans["hash"]) if have.get(m) != (int(n), int(h))]
        self.counters["reread_rows"] += len(got)
        if bad:
            # (rck) asked: a request kept after the checkpoint, or a rewind the checkpoint itself
            # saved as pending (``rewinds``: readings stored before it whose re-judging had not run;
            # the checkpoint forgot their request): either re-judges the meter at the first steps
            asked = {str(r[0]) for r in self.store.con.execute(
                "SELECT DISTINCT meter_id FROM stream_rejudge WHERE name = ?", [self.name]).fetchall()}
            asked |= set(self.rewinds)
            unasked = [x for x in bad if x not in asked]
            self.counters["reread_changed"] += len(bad)
            at = dict(zip(ms, first.tolist()))
            for x in unasked:
                rejudge.mark(self, x, at[x] / 1e6)
            if unasked:
                self._say(f"{len(unasked)} meter(s) (e.g. {', '.join(unasked[:3])}) hold other readings in the store "
                          "than this watcher's checkpoint judged (changed since it was saved: compacted, deleted or "
                          "late without a re-judging request): their carried readings are re-read as the store holds "
                          "them now and re-judged from the start of what was carried")
        return got

    def _load_continuations(self) -> None:
        """(xd) The continuation step's carry, from the store: the consumption alerts the last run
        wrote (heads with what continued them, followers written alone) within a month and
        ``continue_within_h`` of its newest alert end; not checkpointed (the store has each version
        as soon as its step upserted it, before the checkpoint)."""
        from wattwatch.alerts.model import record

        cc = self._cont.config
        codes = sorted({*cc.head_codes, *cc.follow_codes})
        back_s = cc.within_s + self._cont.FORGET_S
        rows = self.store.con.execute(
            f"SELECT * FROM alerts WHERE code IN ({', '.join('?' for _ in codes)}) AND \"end\" >= "
            "(SELECT max(\"end\") FROM alerts) - to_seconds(CAST(? AS DOUBLE))", [*codes, back_s]).df()
        got = [Alert.from_dict(record(r)) for r in rows.to_dict("records")]
        self._cont.remember(got)
        # (pf) a final head written with a provisional follower: merged again or put back to its
        # final version at its meter's next judgement (:meth:`_take_pending_final`)
        # (rpf) and the head each pending follower was given under (``_follows``): it stays under it
        # while the head's final version lags (a restart in that hour showed it under its own id)
        for a in got:
            c = (a.evidence or {}).get("continued")
            if not isinstance(c, dict) or "withdrawn" in a.evidence:
                continue
            pending = [m["id"] for m in c.get("alerts") or [] if m.get("pending") and m["id"] != a.id]
            self._follows.update(dict.fromkeys(pending, (a.meter_id, a.id)))
            if pending and not a.evidence.get("provisional"):
                self._pending_final[a.id] = a
                self._pending_max[a.id] = (pd.Timestamp(a.end), a.score)
        # (al) held open by a pending follower at the checkpoint: open until its meter's next judgement
        self._pending_open = set(self._pending_final) & self.open_ids

    def _load_open_detectors(self) -> None:
        """(rst2) The detector of each alert open at the checkpoint this run resumed from: which
        tier holds it (:meth:`_split_tiers`), not checkpointed. What was written of them (rst1: an
        unchanged version re-given at a restart is not a new version) is read with every other
        alert a restarted stitcher gives again, by :meth:`_stored_before`, when it is given (fix3:
        this method read it here too, by the same rule; ``_written`` is consulted for an id only
        after that read)."""
        if self._resumed_saved is None or not self.open_ids:
            return
        self._det_of.update(alert_store.by_ids(self.store.con, sorted(self.open_ids), "id, detector").fetchall())

    def _load_health(self) -> None:
        """The open set of source-raised health alerts, from the store: every alert whose evidence
        carries ``ended`` (what :meth:`add_health` takes: ``false`` while open) and says false.
        The store has each version as soon as its step upserted it (before the outputs and the
        checkpoint), so this holds after a ``kill -9`` too, where a checkpointed set would miss an
        alert opened or ended since the last checkpoint. One stored ended after the checkpoint this
        run resumed from may not have reached the outputs (the run stopped between its step's
        store and deliver): the first step reports it ended again (at least once; actions skip an
        ``ended`` their log has); with no checkpoint at all (a run killed before its first), every
        one is (as every stored open one is new again then: :meth:`_stored_statuses`)."""
        from wattwatch.alerts.model import record

        df = self.store.con.execute("""SELECT * FROM alerts WHERE evidence LIKE '%"ended": %'""").df()
        ck = self._resumed_saved
        again = []
        for r in df.to_dict("records"):
            a = Alert.from_dict(record(r))
            if "ended" not in a.evidence:
                continue
            if a.evidence.get("retired") and a.evidence["ended"]:
                end = int(pd.Timestamp(a.end).value // 1000)
                if end >= self._retired_stored.get(a.meter_id, ("", -1))[1]:
                    self._retired_stored[a.meter_id] = (str(a.evidence.get("source")), end)
            if not a.evidence["ended"]:
                self.health_open.add(r["id"])
                self._health_stored[r["id"]] = a
            elif ck is None or (r["last_seen"] is not None and r["last_seen"] > ck):
                again.append(r["id"])
        if again:
            self._held = StepReport(ended=sorted(again))
            self.counters["health_ended_again"] += len(again)

    def _load_events_open(self) -> None:
        """(le2) The ongoing edge reports the store keeps (their latest version: a report and its
        leaving one share the alert id): open until the meter's leaving report arrives."""
        from wattwatch.alerts.model import record
        from wattwatch.sources.tamper import ongoing

        df = self.store.con.execute("""SELECT * FROM alerts WHERE evidence LIKE '%"source": "edge"%'""").df()
        for r in df.to_dict("records"):
            a = Alert.from_dict(record(r))
            if ongoing(a):
                self.events_open[a.id] = a

    def _load_provisional(self, ids: list[str]) -> None:
        """The provisional alerts an earlier run wrote and did not confirm or withdraw: the ids its
        checkpoint saved and, since a step upserts them before anything else (a ``kill -9`` after
        the last checkpoint), every alert the store keeps marked provisional and not withdrawn.
        Their meters are judged again by the first steps (the checkpoint's tail, or its readings
        after it): each is then given again (still provisional), found final, or withdrawn."""
        from wattwatch.alerts.model import record

        df = self.store.con.execute(
            """SELECT * FROM alerts WHERE evidence LIKE '%"provisional": true%'""").df()
        if ids:
            df = pd.concat([df, alert_store.by_ids(self.store.con, list(ids)).df()], ignore_index=True)
        ck, saved = set(ids), self._resumed_saved
        for r in df.drop_duplicates("id").to_dict("records"):
            a = Alert.from_dict(record(r))
            if "withdrawn" in a.evidence and r["status"] != "open" and a.evidence.get("provisional"):
                # (pv) withdrawn while someone had it in hand: the final judgement may make it after all
                # (prov) unless the checkpoint's judgement is past it (:meth:`_withdrawn_past`)
                if self._withdrawn_past(a):
                    continue
                self._withdrawn_kept[a.id] = a
                self._prov_max[a.id] = (pd.Timestamp(a.end), a.score)
                self.alerts[a.id] = a
                self._written[a.id] = _version(a)
                self._checked.add(a.id)
                self.settled.add(a.id)
                continue
            # A checkpoint's provisional id is one still when the store keeps it final: the run
            # confirmed it after the checkpoint and may have died before its outputs (an action
            # that waits for final alerts opens it on ``confirmed``): confirmed again when given.
            if "withdrawn" in a.evidence or not (a.evidence.get("provisional") or a.id in ck):
                continue
            # (pc) ended undecided (its meter compacted before its verdict) before the checkpoint: done;
            # after it (the outputs may not have had it): read back, ended again by the first step
            if "undecided" in a.evidence and a.id not in ck:
                continue
            if a.id not in ck and (saved is None or r["first_seen"] is None or r["first_seen"] > saved):
                self._prov_unsent.add(a.id)   # written after the checkpoint: maybe never output
            self.provisional[a.id] = a
            self._prov_max[a.id] = (pd.Timestamp(a.end), a.score)
            self.alerts[a.id] = a
            self._written[a.id] = _version(a)
            self._checked.add(a.id)
            if r["status"] != "open":
                self.settled.add(a.id)
        # (pc) told stopped before the checkpoint: not open (nor told again); one stopped after it is
        # told again when its meter is judged (at least once)
        self._prov_stopped = set(self._ck_prov_stopped) & set(self.provisional)
        self.provisional_open = set(self.provisional) - self._prov_stopped   # (until their meters are judged again)
        # (rprov) Which were ever open (told ended when confirmed closed): as the checkpoint says; one
        # written after it, or a checkpoint without the list, counts as open (at least once). Before,
        # taken from provisional_open above, which the next judgement of its meter replaced before
        # _take_provisional read it: one confirmed there was never told ended after a restart.
        opened = self._ck_prov_opened
        self._prov_opened = {i for i in self.provisional if opened is None or i in opened or i not in ck}
        if self.provisional:
            log.info("%s: %d provisional alert(s) from the last run wait for their meters' next judgement",
                     self.name, len(self.provisional))
        self._load_withdrawn()

    def _load_withdrawn(self) -> None:
        """(pv) The provisional alerts the last run withdrew after its last checkpoint: the outputs
        may not have been told (killed between the step and its outputs; a deleted row leaves no
        other trace). The first step reports each ended again, with ``evidence.withdrawn`` (at least
        once, as every alert after the checkpoint; an action skips an ``ended`` its log has, so it
        acts once). One the store keeps again without the withdrawal (written again after it,
        provisional or final) is not: its later state stands."""
        # (the latest withdrawal of an alert first: one withdrawn, written again and withdrawn again
        # before a checkpoint is told as it was withdrawn last)
        # (le2) and a re-judging's (late readings: rejudge._keep_for_outputs): one that had ended before
        # (``ended_before``) is told as a withdrawal only, not ``ended`` again
        rows = self.store.con.execute("SELECT id, alert, ended_before FROM stream_withdrawn WHERE name = ? "
                                      "ORDER BY withdrawn_at DESC", [self.name]).fetchall()
        if not rows:
            return
        again = {i for i, ev in alert_store.by_ids(self.store.con, sorted({r[0] for r in rows}), "id, evidence").fetchall()
                 if '"withdrawn"' not in (ev or "")}
        held = self._held = self._held or StepReport()
        for aid, doc, ended_before in rows:
            if aid in again or aid in held.withdrawn:
                continue
            try:
                w = Alert.from_dict(json.loads(doc))
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("%s: a withdrawal of alert %s left by the last run cannot be read (%s): not told again",
                            self.name, aid, exc)
                continue
            held.withdrawn[aid] = w
            if aid not in held.ended and not ended_before:
                held.ended.append(aid)
        self.counters["provisional_withdrawn_again"] += len(held.withdrawn)
        if held.withdrawn:
            log.info("%s: %d alert(s) withdrawn by the last run after its last checkpoint: told again",
                     self.name, len(held.withdrawn))

    def resume_sources(self, sources: list) -> None:
        """Resume each source: its checkpointed position (``restore``), and the open health
        alerts the store keeps from it (``resume_health``, for a source that raises them: an
        alert names its source in ``evidence.source``), so that it goes on with them (a device
        still slow keeps its alert's id) or ends them."""
        for s in sources:
            if s.name in self.sources:
                s.restore(self.sources[s.name])
            paced = getattr(s, "poll_paced", lambda: None)()
            if paced is not None:
                self._paced[s.name] = paced
            resume = getattr(s, "resume_health", None)
            if resume is not None:
                mine = [a for a in self._health_stored.values() if a.evidence.get("source") == s.name]
                if mine:
                    resume(mine)
        if self.silence is not None:   # its open alerts go on (same id) or end: runners/silence.py
            self.silence.status_of = self._status_of
            # (le) a lost outlet retired by an earlier run and not heard since (no reading after its end)
            retired = [(src, m) for m, (src, end) in self._retired_stored.items() if self.last.get(m, -1) <= end]
            self.silence.resume(sources, [a for a in self._health_stored.values() if a.id in self.health_open],
                                known=self.last, position=self._silence_ck, retired=retired)
        # The open alerts of a source this run does not have (taken out of the site config): nothing
        # else would ever end them. Ended by the first step (the same id, ``ended_because``).
        names = {s.name for s in sources}
        why = "its source is no longer in the site config"
        for aid, a in self._health_stored.items():
            src = a.evidence.get("source")
            if src not in names and aid in self.health_open:
                log.warning("%s: open alert %s of %s (source %r) ended at the restart: %s", self.name, a.id,
                            a.meter_id, src, why)
                self._health_gone.append(dataclasses.replace(
                    a, evidence={**a.evidence, "ended": True, "ended_because": f"{why} (source {src!r})"}))

    def checkpoint(self, sources: dict[str, dict] | None = None) -> None:
        """Save the carry, what was judged and the sources' positions (one transaction)."""
        if sources is not None:
            self.sources.update(sources)
        self.settle()   # the slow tier's running judgement: its carry and alerts go in together
        self._check_ingest()   # (ovl) readings judged that the store did not keep: no checkpoint after them
        if self._failed is not None:
            self.counters["checkpoints_refused"] += 1
            log.error("%s: no checkpoint: a judgement failed (%s: %s); a restart resumes from the last "
                      "checkpoint and judges what came after it again", self.name, type(self._failed).__name__,
                      self._failed)
            return
        meta, tail, hours = self._checkpoint_payload()
        con = self.store.con
        # (pv) The withdrawals reported by the steps before this checkpoint reached the outputs (a
        # step's report is delivered before the checkpoint that follows it): forgotten with it; one
        # taken outside a step (``_held``: reported by the next step) is kept until the next.
        unsent = sorted(self._held.withdrawn) if self._held is not None else []
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "INSERT OR REPLACE INTO stream_checkpoint (name, version, saved, meta, tail, hours) "
                "VALUES (?, ?, now(), ?, ?, ?)",
                [self.name, CHECKPOINT_VERSION, json.dumps(meta), tail, hours])
            con.execute("DELETE FROM stream_withdrawn WHERE name = ?"
                        + (f" AND id NOT IN ({', '.join('?' for _ in unsent)})" if unsent else ""), [self.name, *unsent])
            # (le3) the re-judging requests: run (their result in this carry) or pending (``rewinds``)
            con.execute("DELETE FROM stream_rejudge WHERE name = ?", [self.name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._last_ck = time.monotonic()
        self.counters["checkpoints"] += 1
        self._prune_withdrawn_kept()

    def _checkpoint_payload(self) -> tuple[dict, bytes | None, bytes | None]:
        """What :meth:`checkpoint` writes: the meta (JSON-able), the full stitcher's carried tail and
        its closed bins (Parquet bytes, or None)."""
        st = self.stitcher
        meta = {"origin": st.origin, "n_before": st.n_before, "since": st.since, "emitted": st.emitted,
                "said": sorted(st._said), "fed": self.slow_fed if self.tiered else self.fed, "profiled": sorted(self.profiled),
                "open": sorted(self.open_ids), "sources": self.sources,
                "counters": {k: int(v) for k, v in self.counters.items()},
                "rewinds": {k: list(v) for k, v in getattr(self, "rewinds", {}).items()},
                "provisional": sorted(self.provisional),
                "provisional_opened": sorted(self._prov_opened & set(self.provisional)),
                # (pc) one a step took outside a step (``_held``, reported by the next step) is not told yet
                "provisional_stopped": sorted((self._prov_stopped & set(self.provisional))
                                              - set(self._held.stopped if self._held is not None else ())),
                "silence": self.silence.position() if self.silence is not None else self._silence_ck}
        tail, spans = self._reread_split(st.carry())
        if spans is not None:
            meta["reread"] = spans
        return meta, carrycodec.write(tail), carrycodec.write(st.hour_carry())

    def _reread_split(self, carry: pd.DataFrame | None) -> tuple[pd.DataFrame | None, dict | None]:
        """(ck) The carried tail as a layout-4 checkpoint keeps it: the rows the store does not hold
        raw (a meter whose first carried reading is before its compaction cut: kept whole) and, for
        every other meter, its span, row count and fingerprint (``spans``, JSON-able: re-read at
        resume, :meth:`_reread`). Every row of a carried tail is a stored reading: the stitcher is
        fed the stored readings of each meter's window (:meth:`_piece`, a rewind's read-back) and
        keeps a meter's readings from a stamp on. A tail with a column the store does not have as a
        channel, or not of the stored types, is kept whole (None)."""
        if carry is None or not len(carry):
            return carry, None
        cols = list(carry.columns)
        mid = carry["meter_id"]
        ok = (cols[:2] == ["meter_id", "ts"] and str(carry["ts"].dtype) == "datetime64[us, UTC]"
              and set(cols[2:]) <= set(self.store.channels())
              and all(carry[c].dtype == np.float64 for c in cols[2:]))
        if not ok:
            return carry, None
        ms, starts = _runs(mid)
        if len(set(ms)) != len(ms):   # (not by meter: kept whole)
            return carry, None
        t = carry["ts"].to_numpy("datetime64[us]").view(np.int64)
        ends = np.r_[starts[1:], len(carry)]
        first, last = t[starts], t[ends - 1]
        cut = np.array([self.cut.get(m, -np.inf) for m in ms], float)
        keep = first / 1e6 < cut          # readings before the cut: not raw in the store
        fp = carrycodec.fingerprint(carry, ["ts", *cols[2:]], starts)
        sel = ~keep
        spans = {"columns": cols[2:], "meters": ms[sel].tolist(), "first": first[sel].tolist(),
                 "last": last[sel].tolist(), "n": (ends - starts)[sel].tolist(), "hash": [int(h) for h in fp[sel]]}
        rows = np.repeat(keep, ends - starts)
        return (carry[rows].reset_index(drop=True) if rows.any() else None), spans

    def _withdrawn_past(self, a: Alert) -> bool:
        """(prov) Whether the full stitcher's final judgement is past a withdrawn provisional alert
        someone settled (:attr:`_withdrawn_kept`): its detector's clean point on the meter (where the
        next judgement starts forming alerts) is after the alert's start, or the detector is no longer
        configured; the final judgement can then never make it after all. A meter the stitcher has
        no clean point for yet (no checkpoint, or not judged since): not past."""
        since = self.stitcher.since.get(a.detector)
        if since is None:
            return True
        at = since.get(a.meter_id)
        return at is not None and math.isfinite(at) and at > pd.Timestamp(a.start).timestamp()

    def _prune_withdrawn_kept(self) -> None:
        """(prov) Forget the settled withdrawn provisional alerts the final judgement is past
        (:meth:`_withdrawn_past`), after a checkpoint that holds that judgement: a restart from it
        does not read them back either (:meth:`_load_provisional`), one from an older checkpoint
        does (its judgement may still make them). Their rows stay as they are (withdrawn, status
        kept). Before, every such alert was kept for the watcher's lifetime and read back at every
        restart: each slow step ran :meth:`_take_provisional` for them, and ``engine.alerts``
        (the watch's "alerts it opened or updated") listed them after a restart."""
        if not self._withdrawn_kept:
            return
        past = [i for i, a in self._withdrawn_kept.items() if self._withdrawn_past(a)]
        for i in past:
            del self._withdrawn_kept[i]
            self._prov_max.pop(i, None)
        self.counters["provisional_withdrawn_forgotten"] += len(past)

    def carry_bytes(self) -> dict:
        """Size of what is kept per meter (sm, issue 16), three things apart:

        - ``state_bytes_per_meter``: the learned state (JSON, as the store keeps it);
        - the checkpoint (stored; what a restart resumes from), by part: ``tail_bytes_per_meter``
          (the full stitcher's carried readings), ``hours_bytes_per_meter`` (its closed bins),
          ``meta_bytes_per_meter`` (clean points, positions, sources, open alerts: JSON);
          ``checkpoint_bytes_per_meter`` their sum; ``plain_tail_bytes_per_meter``: the same tail as
          plain Parquet (the layout-2 checkpoint), for comparison;
        - in memory: the full stitcher's readings as held (``tail_memory_bytes_per_meter``) and its
          known scores (``known_bytes_per_meter``; not checkpointed), the fast tier's tails
          (``fast_tail_memory_bytes_per_meter``; rebuilt from the checkpoint on restart);
        ``tail_rows`` / ``fast_tail_rows``: the full stitcher's rows, the fast tier's longest group's."""
        parts = checkpoint_parts(self)   # (settles the slow tier first)
        st = self.stitcher
        learned = sum(len(json.dumps(v, default=str)) for d in self.dets for v in getattr(d, "state_", {}).values())
        meters = max(len(self.profiled), 1)
        # The tail's known scores (stitch.KNOWN): kept in memory to skip re-scoring, not checkpointed.
        held = _held_bytes(st.tail)
        known = sum(v for c, v in held.items() if str(c).startswith(("_c:", "_k:")))
        # (as held: with room per meter, stitch._Room, its arrays, room included; not a frame made of them)
        fast = sum(p.held_bytes() for p in ([] if self.fast is None else self.fast.parts))
        plain = len(_parquet(st.carry()) or b"")
        return {"meters": len(self.profiled), "tail_bytes_per_meter": parts["tail"] / meters,
                "hours_bytes_per_meter": parts["hours"] / meters,
                "meta_bytes_per_meter": parts["meta"] / meters,
                "checkpoint_bytes_per_meter": (parts["tail"] + parts["hours"] + parts["meta"]) / meters,
                "plain_tail_bytes_per_meter": plain / meters,
                "known_bytes_per_meter": known / meters,
                "tail_memory_bytes_per_meter": (sum(held.values()) - known) / meters,
                "fast_tail_memory_bytes_per_meter": fast / meters,
                "state_bytes_per_meter": learned / meters,
                "tail_rows": 0 if st.tail is None else len(st.tail),
                # The fast tier's own tail (in memory; rebuilt from the checkpointed carry on restart).
                # (its groups' tails: the longest, in rows)
                "fast_tail_rows": max((len(t) for t in ([] if self.fast is None else self.fast.tails)), default=0)}

    # ------------------------------------------------------------------------------ steps

    def add(self, frame: pd.DataFrame, source: str = "watch") -> int:
        """Store readings (one transaction); returns how many new rows the store kept."""
        from wattwatch.ingest.mapping import Mapping
        from wattwatch.ingest.pipeline import ingest_live
        from wattwatch.schema import COLUMNS, extra_channel_error

        if frame is None or not len(frame):
            return 0
        # Extra channels a source reports under their own names (ups_battery_pct, ups_mode_1) are
        # kept as the mapping's [extra] keeps them in a file.
        extras = {c: c for c in frame.columns if c not in COLUMNS and extra_channel_error(c) is None}
        self._check_ingest()
        marked = []

        def then(counts, rows):
            # (le3) the late readings' re-judging asked in the transaction that stores them
            marked.append(True)
            return rejudge.requests(self, self._late(None, rows, counts))

        try:
            counts, rows, touched = ingest_live(self.store, frame, Mapping(extra=extras) if extras else None,
                                                source=f"watch:{source}", cache=self._norms,
                                                background=self.scfg.ingest_thread, poll=self._paced.get(source),
                                                then=then)
        except BaseException:
            self._check_ingest()   # an earlier ingest's writes failed (raised by this one's wait)
            raise
        self._hand(frame, rows, touched)
        if counts.rejected:
            self.counters["rejected"] += counts.rejected
            _say_rejects(frame, counts.rejects, source, self._rejects_said)
        if counts.dropped:   # kept without the value: stored as missing, the reading's span moves as any
            self.counters["values_dropped"] += len(counts.dropped)
            _say_rejects(frame, counts.dropped, source, self._rejects_said, kept=True)
        if counts.conflicts:   # (fast) a correction: the kept values stay, the copy's are dropped, said
            self.counters["conflicts"] += counts.conflicts
            _say_conflicts(counts, source, self._rejects_said)
        self.counters["readings"] += len(frame)
        self.counters["stored"] += counts.stored
        # A column already in UTC (a source's own frames) without the copy to_datetime makes; any
        # other parsed, an unreadable time NaT (a rejected reading: it moves no meter's span).
        ts = utc_times(frame["ts"], errors="coerce")
        ok = ts.notna().to_numpy()
        if counts.rejected:   # a rejected reading (a clock at 1970 or 2199) moves no meter's span
            ok[np.asarray([ln - 1 for _, ln, _, _ in counts.rejects if 0 < ln <= len(ok)], dtype=np.int64)] = False
        g_m = frame["meter_id"].astype(str).to_numpy()[ok]
        g_t = ts.to_numpy("datetime64[us]").astype(np.int64)[ok]
        if len(g_m):
            # Per meter (in the order of their first reading, as a groupby without sorting) its
            # first and newest stamp: NumPy reductions, not a grouped frame (fo: ~1.5 ms a step of
            # one reading for the groupby's and the frame's fixed cost).
            code, um = pd.factorize(g_m)
            lo_m = np.full(len(um), np.iinfo(np.int64).max)
            hi_m = np.full(len(um), np.iinfo(np.int64).min)
            np.minimum.at(lo_m, code, g_t)
            np.maximum.at(hi_m, code, g_t)
            hi_m = _newest_stored(um, hi_m, rows)
            self._cad_newest = max(self._cad_newest, int(hi_m.max()))
            for m, lo, hi in zip(um.tolist(), lo_m, hi_m):
                self.first[m] = min(self.first.get(m, lo), int(lo))
                self.last[m] = max(self.last.get(m, hi), int(hi))
                self._cad_new.add(m)
                self.dirty.add(m)
        if not marked:   # (a wide mapping: no ``then``; asked in memory only, as before le3)
            self._late(pd.DataFrame({"m": g_m, "t": g_t}), rows, counts)
        return counts.stored

    def _late(self, g: pd.DataFrame | None, rows: pd.DataFrame | None, counts) -> dict[str, float]:
        """Mark for re-judging (:func:`rejudge.mark`) each meter that got late data: a reading
        stored now at or before its last judged one, or such a stored reading that a copy filled
        (``counts.changed``, at the stored reading's time: a copy jittered past the last judged
        reading may fill it). A copy repeating a stored reading (the store's match: within its
        meter's duplicate tolerance, no value differing, nothing filled; a QoS 1 redelivery, a
        gateway's replay) changed nothing a judgement read: it is counted (``duplicates``) and
        re-judges nothing; so does a correction (other values: the store keeps its own; counted in
        ``conflicts``, fast: rb2 re-judged it for nothing). ``g``: the batch's readable readings
        (``m``, ``t`` µs), taken as late data when the ingest said no rows (a wide mapping). Returns
        the meters marked, each with where its re-judging starts (epoch s)."""
        if rows is None:
            lm, lt = g["m"].to_numpy(), g["t"].to_numpy()
        else:
            chg = counts.changed
            # (a filling copy that also gave another value is counted once, in ``conflicts``)
            n_chg = 0 if chg is None else int((~chg["conflict"].to_numpy()).sum())
            self.counters["duplicates"] += counts.read - counts.rejected - counts.stored - n_chg - counts.conflicts
            lm, lt = rows["meter_id"].to_numpy(), rows["ts"].to_numpy("datetime64[us]").astype(np.int64)
            if chg is not None and len(chg):   # (rfast) every fill, conflicting or not, is late data
                lm = np.concatenate([lm, chg["meter_id"].to_numpy().astype(object)])
                lt = np.concatenate([lt, chg["t"].to_numpy(np.int64)])
        if not len(lm) or not self.fed:
            return {}
        code, um = pd.factorize(lm)
        fed = np.array([self.fed.get(m, NEG) for m in um], np.int64)
        late = lt <= fed[code]
        if not late.any():
            return {}
        self.counters["late"] += int(late.sum())
        code, lt = code[late], lt[late]
        # Late readings for compacted hours are not judged (_after_cut): only those after the
        # meter's compaction cut re-judge it.
        if self.cut:
            cut = np.array([self.cut.get(m, -np.inf) for m in um]) * 1e6
            j = lt >= cut[code]
            code, lt = code[j], lt[j]
        marks = {}
        if len(lt) and (rows is not None or counts.stored):   # (a wide mapping: as before b2)
            first = np.full(len(um), np.iinfo(np.int64).max)
            np.minimum.at(first, code, lt)
            for i in np.flatnonzero(first < np.iinfo(np.int64).max):
                marks[str(um[i])] = int(first[i]) / 1e6
                rejudge.mark(self, str(um[i]), int(first[i]) / 1e6)   # something new: re-judge from there
        return marks

    def _hand(self, frame: pd.DataFrame, rows: pd.DataFrame | None, touched: set[str]) -> None:
        """Keep the rows an ingest stored for the next step (before ``self.last`` moves)."""
        metered = pd.unique(frame["meter_id"].astype(str)) if "meter_id" in frame.columns else []
        if rows is None:
            touched = set(map(str, metered))
        for m in touched:   # readings already stored may have changed: read those meters back
            self.exact.pop(m, None)
        if rows is None:
            return
        for m in metered:
            m = str(m)
            if m in touched:
                continue
            f = self.fed.get(m, NEG)
            if m not in self.exact and m in self.profiled and f > NEG and f >= self.last.get(m, NEG):
                self.exact[m] = f   # everything stored was judged: what follows is handed here
        if len(rows):
            self.handed = rows if self.handed is None or not len(self.handed) else \
                pd.concat([self.handed, rows], ignore_index=True)

    def _piece(self, rows: list[tuple]) -> pd.DataFrame:
        """The stored readings of each meter in its window (lo, hi] (epoch µs): from the handed
        rows where they hold every stored reading of it there, else read back from the store."""
        h = self.handed
        own = [r for r in rows if r[0] in self.exact and r[1] >= self.exact[r[0]]] if h is not None else []
        mine = {r[0] for r in own}
        ask = [r for r in rows if r[0] not in mine]
        parts = []
        if ask:
            w = pd.DataFrame({"meter_id": [r[0] for r in ask],
                              "start": [pd.NaT if r[1] == NEG else pd.Timestamp(r[1] + 1, unit="us", tz="UTC") for r in ask],
                              "end": [pd.Timestamp(r[2] + 1, unit="us", tz="UTC") for r in ask]})
            got = self.store.query_windows(w)
            got["meter_id"] = got["meter_id"].astype(str)
            parts.append(got)
        if own:
            t = h["ts"].to_numpy("datetime64[us]").astype(np.int64)
            # Each handed row's window, looked up once per meter of the handed rows (fk: not two
            # Series built from dicts and reindexed to every row, ~0.5 ms a step; the same floats).
            code, um = pd.factorize(h["meter_id"].to_numpy(), use_na_sentinel=False)
            lo, hi = {r[0]: r[1] for r in own}, {r[0]: r[2] for r in own}
            lo_r = np.array([lo.get(m, np.nan) for m in um], float)[code]
            hi_r = np.array([hi.get(m, np.nan) for m in um], float)[code]
            sel = (t > lo_r) & (t <= hi_r)           # NaN (a meter not in `own`) compares False
            parts.append(h[sel])
            self.counters["handed"] += int(sel.sum())
        piece = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if len(parts) > 1 or own:
            # Without its all-missing columns (as ``dropna(axis=1, how="all")``, one look at each
            # column's array instead of a frame of flags; fo), in the store's order.
            have = [c for c in piece.columns if not pd.isna(piece[c].array).all()] if len(piece) else list(piece.columns)
            order = [*("meter_id", "ts"), *(c for c in self.store.channels(live=True) if c in have)]
            order += [c for c in have if c not in order]
            if order != list(piece.columns):   # (fk: else it is a copy already: ``h[sel]``, the concat)
                piece = piece[order]
            # The handed rows of one add() come sorted (ingest_live): no sort then (~1.5 ms).
            piece = piece.reset_index(drop=True) if _by_meter_time(piece) else \
                piece.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
        return piece

    def _prune_handed(self) -> None:
        """Drop handed rows no step will take: judged ones and those of meters read back."""
        h = self.handed
        if h is None or not len(h):
            return
        # Per meter of the handed rows (not a Series of every meter's ``fed`` built and reindexed
        # at every step; fo): its last judged stamp (NaN: none) and whether its rows are handed.
        code, um = pd.factorize(h["meter_id"].to_numpy(), use_na_sentinel=False)
        f = np.array([self.fed.get(m, np.nan) for m in um], float)[code]
        ok = np.array([m in self.exact for m in um], bool)[code]
        keep = ok & ~(h["ts"].to_numpy("datetime64[us]").astype(np.int64) <= f)
        self.handed = h[keep].reset_index(drop=True) if not keep.all() else h

    def _check_ingest(self) -> None:
        """(ovl) Raise when an ingest's writes in the store's worker failed (the store rolled them
        back; their rows may have been judged, and this engine's memory holds them as stored): the
        engine is done, as after a ``kill -9`` (no checkpoint after it; a restart resumes from the
        one before and the sources deliver the readings again)."""
        failed = self.store.live_failed if hasattr(self.store, "live_failed") else None
        if failed is None:
            return
        if self._ingest_failed is None:
            self._ingest_failed = failed
            # (rovl) Failed before anyone waited for it (its COMMIT is quick: often before the
            # step begins): taken off the store too, or its next statement (the watcher's closing
            # ones, ``close``) raised it again.
            with contextlib.suppress(Exception):
                self.store.settle()
            raise failed
        raise RuntimeError(f"{self.name}: a step's readings were not stored ({type(failed).__name__}: {failed}); "
                           "this engine cannot go on: restart the watcher (it resumes from its last checkpoint)") from failed

    def step(self, final: bool = False) -> StepReport:
        """Profile meters whose first days are stored, judge every new stored reading, upsert the
        alerts. ``final``: no readings will follow (every pending reading becomes final).

        (ovl) The store's writes of the readings ``add`` took may still run in its worker
        (``StreamConfig.ingest_thread``) while this judges their rows; every alert is written
        after their COMMIT, and this step raises what they raised."""
        self._check_ingest()
        try:
            rep = self._step(final)
            settle = getattr(self.store, "settle", None)
            if settle is not None:
                settle()   # the readings' COMMIT is this step's, even when it wrote no alert
        except BaseException:
            self._check_ingest()
            raise
        return rep

    def _step(self, final: bool = False) -> StepReport:
        """:meth:`step`'s work.

        Tiered (``slow_every_s > 0``): the fast tier judges the new readings every step; the
        full stitcher (every detector) judges what queued for it when the slow clock ticks, on
        ``final``, and before a rewind or a resync (see :meth:`_slow`)."""
        rep, self._held = self._held or StepReport(), None
        if self._start_notes:
            rep.notices += [n for n in self._start_notes if n not in rep.notices]
            self._start_notes = []
        if self._undecided_due:
            self._end_undecided(rep)
        self._poll(rep)
        self._profile_ready(final, rep)
        rejudge.relearn_ready(self, final, rep)
        if self.tiered:
            self._split_tiers(rep)
            # (rrst2) At a restart (the checkpointed full stitcher is behind what the fast tier
            # judged and wrote) the rewinds wait for the resync (below): re-judged from the full
            # stitcher's checkpoint they would see the fast tier's alerts cut there.
            if self.rewinds and not (self._resync and self._restarted):
                self._slow(rep, final=False)   # the full stitcher caught up, then rewound
                before = set(self.rewinds)
                rejudge.run(self, rep)
                self._adopt(before - set(self.rewinds))
        else:
            rejudge.run(self, rep)
        todo = sorted(m for m in self.dirty if m in self.profiled)
        hold = int(round(self.scfg.hold_s * 1e6))
        rows = []
        for m in todo:
            lo = self.fed.get(m, NEG)
            hi = self.last.get(m, NEG) if final else self.last.get(m, NEG) - hold
            if hi > lo:
                rows.append((m, lo, hi))
        piece = None
        if rows:
            piece = self._piece(rows)
            if len(piece):
                t = piece["ts"].to_numpy("datetime64[us]").astype(np.int64)
                # Per meter (in the order of its first row) its newest stamp: a NumPy reduction,
                # not a groupby (fo: ~0.5 ms of fixed cost a step)
                code, um = pd.factorize(piece["meter_id"].to_numpy())   # (a missing id: -1, left out as groupby did)
                mx = np.full(len(um), np.iinfo(np.int64).min)
                np.maximum.at(mx, code[code >= 0], t[code >= 0])
                for m, v in zip(um.tolist(), mx.tolist()):
                    self.fed[m] = int(v)
                piece = self._after_cut(piece)
        self._prune_handed()
        self.dirty = {m for m in self.dirty if m not in self.profiled or self.fed.get(m, NEG) < self.last.get(m, NEG)}
        have = piece is not None and len(piece)
        if have:
            rep.judged = len(piece)
        if self.tiered:
            if have:
                self.pending.append(piece)
            if self._resync:
                # Every detector judges what queued (this piece too), the fast tier adopts the
                # carry: a fresh engine, a restart, a change of tiers.
                self._resyncing = True
                try:
                    self._slow(rep, final, tier="all")
                finally:
                    self._resyncing = False
                self._resync = False
                if self._restarted:   # (rrst2) the full stitcher has judged every stored reading now
                    self._restarted = False
                    if self.rewinds:
                        rejudge.run(self, rep)
                self._adopt(None)
            else:
                # The fast tier first (its alerts are written before the slow tier runs), then
                # the slow tier when its clock ticks.
                if have and self.fast_names:
                    self._take(self.fast.feed(piece, final=final), rep, "fast")
                elif final and self.fast_names:
                    self._take(self.fast.flush(), rep, "fast")
                # With the worker still on the previous judgement, what queued waits for the
                # next step that finds it free (the fast step does not wait behind it). One it
                # finished meanwhile is taken first (the slow clock's mark moves with it).
                self._poll(rep)
                if final or (self._slow_due() and not self._busy()):
                    self._slow(rep, final, wait=final or not self.scfg.slow_thread)
        else:
            if have:
                res = self._guarded(self.stitcher.feed, piece, final=final)
            elif final:
                res = self._guarded(self.stitcher.flush)
            else:
                res = None
            if res is not None:
                self._take(res, rep)
        self._poll(rep)
        if final and self.provisional:
            # No readings will follow: every reading was judged final, so what is still
            # provisional (a meter the final judgement did not take again) is not confirmed.
            gone = self._compacted_kept(list(self.provisional.values()), rep)
            if gone:
                self._withdraw_provisional(gone, rep)
        self._alive_again(rep)
        self._cadence_check(rep, final)
        self.counters["judged"] += rep.judged
        return rep

    def _alive_again(self, rep: StepReport) -> None:
        """(rpv) Of the withdrawals ``rep`` reports (this step's, or the last run's told again by
        the first step: :meth:`_load_withdrawn`), those whose alert the step gave again (provisional,
        or final: an acknowledged one made final after all) are not reported: the outputs take a
        report's ``ended`` after its alerts, so the alert, alive, would end there (an InfluxDB point
        left "withdrawn", an action's ``ended``)."""
        for i in [i for i in rep.withdrawn if i in self.provisional
                  or (i in self.alerts and "withdrawn" not in self.alerts[i].evidence)]:
            del rep.withdrawn[i]
            if i in rep.ended:
                rep.ended.remove(i)   # (its first: one ``_take`` ended besides stays)

    def _cadence_check(self, rep: StepReport, final: bool) -> None:
        """Say, once per meter, that its latest readings come at another cadence than the one its
        state was learned at (``detect``'s notice, :func:`api._cadence_change_notices`): every
        ``CADENCE_CHECK_S`` of data time (and on ``final``), on the last ``CADENCE_GAPS`` learned
        gaps of the meters that received readings since the last check (one store read)."""
        # The clock first: between checks a step does nothing per meter (rev41: the meters were
        # gathered and sorted at every fast step, 8-15 ms a step at 10,000 meters, to find it was not time).
        if not final and self._cad_newest - self._cad_at < CADENCE_CHECK_S * 1e6:
            return
        from wattwatch import api
        from wattwatch.detect.frame import prepare

        self._cad_at = self._cad_newest
        self._cad_new -= self._cad_said
        ms = sorted(m for m in self._cad_new if m in self.profiled)
        if not ms:
            return
        self._cad_new.difference_update(ms)
        cad = np.array([core._cadence(self.dets, m) for m in ms], float)
        ok = np.isfinite(cad) & (cad > 0)
        ms, cad = [m for m, k in zip(ms, ok) if k], cad[ok]
        if not ms:
            return
        hi = np.array([self.last[m] for m in ms], np.int64)
        w = pd.DataFrame({"meter_id": ms, "start": pd.to_datetime(hi - (CADENCE_GAPS * cad * 1e6).astype(np.int64),
                                                                   unit="us", utc=True),
                          "end": pd.to_datetime(hi + 1, unit="us", utc=True)})
        col = self.store.channels()[:1]
        got = self.store.query_windows(w, columns=col)
        if not len(got):
            return
        got["meter_id"] = got["meter_id"].astype(str)
        # The window is the meter's latest readings: all of it is "the last part" detect looks at.
        notes = api._cadence_change_by_meter(prepare(got), self.dets, set(ms), tail=1.0, min_gaps=CADENCE_MIN_GAPS)
        # A meter slowed more than CADENCE_GAPS / CADENCE_MIN_GAPS (10) times has too few gaps in
        # that window for the notice (1 -> 15 min: 32 in 8 h; rev41: never said, while detect says
        # it): when the gaps it has are ``factor`` (2) or more times its learned cadence, read it
        # again over twice CADENCE_MIN_GAPS of them (rare: only such meters, every 6 h of data).
        t = got["ts"].to_numpy("datetime64[us]").astype(np.int64)
        gm = got["meter_id"].to_numpy()
        order = np.lexsort((t, gm))
        gm, t = gm[order], t[order]
        same = np.r_[False, gm[1:] == gm[:-1]]
        gaps = pd.DataFrame({"m": gm[same], "dt": (t[1:] - t[:-1])[same[1:]] / 1e6})
        per = gaps.groupby("m")["dt"].agg(["size", "median"])
        learned = pd.Series(cad, index=ms)
        per = per[(per.index.isin(learned.index)) & (~per.index.isin(list(notes)))]
        per = per[(per["size"] >= 2) & (per["size"] < CADENCE_MIN_GAPS)
                  & (per["median"] >= 2.0 * learned.reindex(per.index).to_numpy())]
        if len(per):
            hi2 = np.array([self.last[m] for m in per.index], np.int64)
            w2 = pd.DataFrame({"meter_id": list(per.index),
                               "start": pd.to_datetime(hi2 - (2 * CADENCE_MIN_GAPS * per["median"].to_numpy() * 1e6)
                                                       .astype(np.int64), unit="us", utc=True),
                               "end": pd.to_datetime(hi2 + 1, unit="us", utc=True)})
            again = self.store.query_windows(w2, columns=col)
            if len(again):
                again["meter_id"] = again["meter_id"].astype(str)
                notes.update(api._cadence_change_by_meter(prepare(again), self.dets, set(per.index), tail=1.0,
                                                          min_gaps=CADENCE_MIN_GAPS))
        for m, n in notes.items():
            self._cad_said.add(m)
            if n not in rep.notices:
                rep.notices.append(n)
                self.notices.append(n)
                log.warning("%s: %s", self.name, n)

    # ------------------------------------------------------------------------------ tiers

    def _split_tiers(self, rep: StepReport) -> None:
        """Which detectors form the fast tier, from their effective reach ahead on the profiled
        meters (recomputed as meters are profiled; a change resyncs the fast tier). A detector's
        effective reach includes every blocker's, so the fast tier holds the blockers of each of
        its detectors: it never needs a slow detector's findings."""
        if len(self.profiled) == self._tiers_for and self.fast is not None:
            return
        self._tiers_for = len(self.profiled)
        fast = fast_tier(self.dets, sorted(self.profiled), self.scfg.fast_reach_s)
        if self.fast is None or fast != self.fast_names:
            if self.fast is not None:
                self.counters["tier_changes"] += 1
            self.fast_names = fast
            self.fast = Stitchers([d for d in self.dets if d.name in fast], keep_scores=False, cut=self.cut)
            self._resync = True
            # (rst2) Which tier holds each open alert, from its detector (a restarted engine knows
            # the detectors of the checkpoint's open alerts from the store: _load_open_detectors): a
            # judgement of one tier before the resync (the slow tier's catch-up before a rewind at
            # the first step) leaves the other's open alerts open. Unknown: the slow tier's.
            ot = self._open_tier
            ot["fast"] = {i for i in self.open_ids if self._det_of.get(i) in fast}
            ot["slow"] = self.open_ids - ot["fast"]

    def _slow_due(self) -> bool:
        """The slow clock: the newest judged reading of the fleet entered a new period of
        ``slow_every_s`` seconds of data time since the slow tier last ran."""
        if not self.pending:
            return False
        newest = max(self.fed.values(), default=NEG) / 1e6
        return self._slow_mark is None or np.floor(newest / self.scfg.slow_every_s) > self._slow_mark

    def _slow(self, rep: StepReport, final: bool, tier: str = "slow", wait: bool = True) -> None:
        """Feed the full stitcher what queued for it (every detector); take the slow tier's alerts
        (``tier="all"``: every detector's, the fast tier then adopts the carry). ``wait=False``
        (the slow clock's tick, :attr:`StreamConfig.slow_thread`): in the worker thread, its
        alerts taken by a later step (:meth:`_poll`) or :meth:`settle`."""
        self.settle(rep)   # one judgement of the full stitcher at a time, in order
        piece = None
        if self.pending:
            piece = pd.concat(self.pending, ignore_index=True) if len(self.pending) > 1 else self.pending[0]
            self.pending = []
        # What the full stitcher will have judged, taken as judged only once it has (settle):
        # a judgement that raises leaves ``slow_fed`` (the checkpoint's) where it was.
        fed = dict(self.fed)
        newest = max(self.fed.values(), default=NEG) / 1e6
        mark = float(np.floor(newest / self.scfg.slow_every_s))
        self.counters["slow_steps"] += 1
        rep.slow = True
        rep.slow_started += 1
        if not wait:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wattwatch-slow")
            self._job = (self._pool.submit(self._judge_slow, piece, final, tier), tier, piece, fed, mark)
            return
        try:
            out = self._judge_slow(piece, final, tier)
        except BaseException as exc:
            self._slow_failed(exc, piece)
            raise
        self.slow_fed, self._slow_mark = fed, mark
        self._take_slow(out, tier, rep)

    def _slow_failed(self, exc: BaseException, piece) -> None:
        """A judgement of the full stitcher raised: what it was given queues again (first), and
        no checkpoint is written after it."""
        if piece is not None and len(piece):
            self.pending.insert(0, piece)
        self._failed = exc
        self.counters["slow_failures"] += 1

    def _guarded(self, fn, *a, **k):
        try:
            return fn(*a, **k)
        except BaseException as exc:
            self._failed = exc
            raise

    def _judge_slow(self, piece, final: bool, tier: str):
        """The full stitcher's judgement (the worker's job: touches nothing else of the engine);
        returns its result and the CPU seconds it took (of its own thread)."""
        c0 = time.thread_time()
        if piece is not None and len(piece):
            res = self.stitcher.feed(piece, final=final)
        elif final or tier == "all":
            res = self.stitcher.flush() if final else self.stitcher.feed(piece if piece is not None else _empty())
        else:
            res = None
        return res, time.thread_time() - c0

    def _take_slow(self, out, tier: str, rep: StepReport) -> None:
        res, cpu = out
        if res is not None:
            self._take(res, rep, tier)
        rep.slow_cpu_s += cpu
        rep.slow_taken += 1

    def _busy(self) -> bool:
        """The slow tier's worker is still judging."""
        return self._job is not None and not self._job[0].done()

    def _poll(self, rep: StepReport) -> None:
        """Take the slow tier's judgement if the worker has finished it (never waits)."""
        if self._job is not None and self._job[0].done():
            self.settle(rep)

    def settle(self, rep: StepReport | None = None) -> StepReport | None:
        """Wait for the slow tier's running judgement, if any, and write its alerts (into ``rep``;
        without one, into a report the next step returns, which is also returned). Everything
        that reads or changes the full stitcher or the detectors' state settles first."""
        if self._job is None:
            return rep
        fut, tier, piece, fed, mark = self._job
        try:
            out = fut.result()   # the worker's exception, if any, is raised here
        except BaseException as exc:
            if fut.done():       # not an interrupt of this wait: the judgement itself failed
                self._job = None
                self._slow_failed(exc, piece)
            raise
        self._job = None
        lost = getattr(self.store, "live_failed", None)
        if lost is not None:
            # (rovl) It may have judged readings whose writes then failed in the store's worker
            # (StreamConfig.ingest_thread): not taken (no alert for readings the store lost); the
            # engine goes no further, a restart judges again from its last checkpoint.
            log.warning("%s: the slow tier's judgement is dropped: a step's readings were not stored (%s)",
                        self.name, lost)
            return rep
        self.slow_fed, self._slow_mark = fed, mark
        if rep is None:
            rep = self._held = self._held or StepReport()
        self._take_slow(out, tier, rep)
        return rep

    def take_held(self) -> StepReport | None:
        """Settle the slow tier and return (and forget) what was taken outside a step."""
        self.settle()
        rep, self._held = self._held, None
        return rep

    def close(self) -> None:
        """Stop the slow tier's worker (a judgement it is running is finished, its result not
        taken: :meth:`settle` or :meth:`checkpoint` first to keep it)."""
        self._job = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _adopt(self, meters: set[str] | None) -> None:
        """The fast tier takes the full stitcher's carry of ``meters`` (None: every meter): the
        fast detectors' clean points and final points, the tail (readings, known scores of the
        fast detectors) and where it starts. The full stitcher has judged every reading the
        fast tier has, with the same detectors among others, so this is the carry the fast tier
        would have; its meters are judged once more at its next piece (their open alerts). Each
        of the fast tier's stitchers (:class:`~wattwatch.detect.stitch.Stitchers`) takes it for
        its own detectors and the channels it keeps."""
        if self.fast is None or (meters is not None and not meters):
            return
        if meters is None:
            self.fast = Stitchers(list(self.fast.detectors), keep_scores=False, cut=self.cut)
        got: set[str] = set()
        for fast in self.fast.parts:
            got |= self._adopt_part(fast, meters)
        self.counters["fast_adopted"] += len(got)

    def _adopt_part(self, fast: Stitcher, meters: set[str] | None) -> set[str]:
        """:meth:`_adopt` for one stitcher of the fast tier; the meters whose tail it took."""
        full = self.stitcher
        ms = set(meters) if meters is not None else None
        for d in fast.detectors:
            for src, dst in ((full.since, fast.since), (full.emitted, fast.emitted)):
                have = src.get(d.name, {})
                if ms is None:
                    dst[d.name] = dict(have)
                    continue
                for m in ms:
                    if m in have:
                        dst[d.name][m] = have[m]
                    else:
                        dst[d.name].pop(m, None)
        for src, dst in ((full.origin, fast.origin), (full.n_before, fast.n_before)):
            for m in (src if ms is None else ms):
                if m in src:
                    dst[m] = src[m]
                else:
                    dst.pop(m, None)
        for n, per in fast.hours.items():
            for m in (full.hours.get(n, {}) if ms is None else ms):
                if m in full.hours.get(n, {}):
                    per[m] = full.hours[n][m]
                else:
                    per.pop(m, None)
        mine = {f"_c:{d.name}" for d in fast.detectors} | {f"_k:{d.name}" for d in fast.detectors}
        parts = []
        if full.tail is not None and len(full.tail):
            t = full.tail
            if ms is not None:
                t = t[t["meter_id"].astype(str).isin(ms).to_numpy()]
            t = t[[c for c in t.columns if (c in mine or not str(c).startswith(("_c:", "_k:"))) and fast._keeps(c)]]
            parts.append(dense_columns(t))   # compact columns of each tail in their own forms
        if ms is not None and fast.tail is not None and len(fast.tail):
            parts.append(dense_columns(fast.tail[~fast.tail["meter_id"].astype(str).isin(ms).to_numpy()]))
        parts = [p for p in parts if len(p)]
        if parts:
            tail = pd.concat([p.assign(meter_id=p["meter_id"].astype(str)) for p in parts], ignore_index=True)
            for c in tail.columns:
                if str(c).startswith("_k:"):
                    v = tail[c].to_numpy()
                    tail[c] = np.where(pd.isna(v), False, v).astype(bool)
            tail = tail.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
            fast.tail = tail
        else:
            fast.tail = None
        got = set(tail["meter_id"].unique()) if parts else set()
        for m in (got if ms is None else ms):
            fast.open.pop(m, None)
        fast.stale |= got
        return got

    def _upsert(self, alerts: list[Alert]) -> None:
        """Write alert versions in one transaction and remember what was written of each."""
        if not alerts:
            return
        # One statement (atomic on its own): the tables were created at start, and the engine
        # needs no counts of known ids.
        alert_store.upsert(self.store.con, alerts, counts=False)
        for a in alerts:
            self._written[a.id] = _version(a)

    def _stored_before(self, ids: list[str]) -> None:
        """(rst1, rst2) Of alerts a stitcher gives that this run (resumed from a checkpoint) has
        not checked yet, what the store kept at or before that checkpoint: each reached the outputs
        then (a step's outputs come before its checkpoint). The restarted stitchers judge their
        carried meters again and give their open alerts again (the checkpoint's open ones among
        them), and may give closed ones again: the tiered engine checkpoints the full stitcher,
        which may be behind the fast tier, so a fast alert that opened and ended before the
        checkpoint is given again, unchanged. An id the store first kept by then is not new; an open
        version it last wrote by then is what was written of it (an unchanged version re-given at a restart is not a new
        version). One written after the checkpoint may not have reached the outputs: delivered
        again when given again (at least once). The statuses read are the ones :meth:`_settled`
        reads (one store read for both, only for ids not checked yet)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self._checked]
        if not todo:
            return
        from wattwatch.alerts.model import record

        ck = self._resumed_saved
        df = alert_store.by_ids(self.store.con, todo).df()
        for r in df.to_dict("records"):
            if r["status"] != "open":
                self.settled.add(r["id"])
                continue
            if r["first_seen"] is not None and r["first_seen"] <= ck:
                self._kept_before.add(r["id"])
            if r["last_seen"] is not None and r["last_seen"] <= ck and r["id"] not in self._written:
                self._written[r["id"]] = _version(Alert.from_dict(record(r)))
        self._checked.update(todo)
        self.counters["status_reads"] += 1

    def _settled(self, ids: list[str]) -> set[str]:
        """Of ``ids``, the alerts the store keeps acknowledged or cleared. The store is asked only
        about ids this run has not checked yet (a new alert, or one found again after a restart):
        its statuses change meanwhile only through :meth:`mark_settled`. (A ``SELECT ... id IN`` at
        every step scans the alerts table: ~1 ms on a store of 1,000 alerts, 40-80 ms on one of
        1,000,000.)"""
        todo = [i for i in dict.fromkeys(ids) if i not in self._checked]
        if todo:
            rows = alert_store.by_ids(self.store.con, todo, "id", "status <> 'open'").fetchall()
            self.settled.update(r[0] for r in rows)
            self._checked.update(todo)
            self.counters["status_reads"] += 1
        return {i for i in ids if i in self.settled}

    def _known_as_stored(self, ids: list[str]) -> None:
        if not ids:
            return
        from wattwatch.alerts.model import record

        df = alert_store.by_ids(self.store.con, ids).df()
        for r in df.to_dict("records"):
            self.alerts[r["id"]] = Alert.from_dict(record(r))

    def _stored_statuses(self, alerts: list) -> tuple[dict[str, str], set[str]]:
        """Of source-raised alerts this run has not seen, those the store keeps (a report
        delivered again after a restart, a device still slow): id -> stored status, which such an
        alert keeps (acknowledged or cleared), as a later version of one this run has seen keeps
        its status here (upserts keep statuses in the store); and the ids of those that are not
        new: a person settled them, or the store kept them before the checkpoint this run resumed
        from (outputs get a step's alerts before its checkpoint). One the store first kept after
        that checkpoint may never have reached the outputs (the run stopped before they had it:
        the very case in which a source delivers a report again) and is new, as a core alert found
        again after a restart is (at least once; actions skip what their log says was done)."""
        unseen = sorted({a.id for a in alerts if a.id not in self.alerts})
        if not unseen:
            return {}, set()
        rows = alert_store.by_ids(   # (the engine made the alerts table at its start)
            self.store.con, unseen, "id, status, first_seen").fetchall()
        ck = self._resumed_saved
        known = {i for i, st, first in rows
                 if st != "open" or (ck is not None and first is not None and first <= ck)}
        return {i: st for i, st, _ in rows}, known

    def _take_statuses(self, alerts: list) -> set[str]:
        """Give source-raised alerts the status they have: the store's for one this run has not
        seen, the engine's for a later version of one it has (acknowledge and clear go through
        the engine). Returns the ids that are not new although this run has not seen them
        (:meth:`_stored_statuses`)."""
        stored, known = self._stored_statuses(alerts)
        for a in alerts:
            if a.id in stored:
                a.status = stored[a.id]
            elif a.id in self.alerts:
                a.status = self.alerts[a.id].status
        return known

    def _status_of(self, alert_id) -> str | None:
        """(le) An alert's status (open, acknowledged, cleared) as this engine holds it (the silence
        watch retires a lost outlet cleared by an operator); the store's for one it has not written."""
        a = self.alerts.get(alert_id)
        if a is not None or alert_id is None:
            return getattr(a, "status", None)
        from wattwatch.alerts.store import statuses

        return statuses(self.store.con, [alert_id]).get(alert_id) if alert_id in self.settled else None

    def mark_settled(self, alert_id: str) -> None:
        """An alert was acknowledged or cleared while this engine holds the store."""
        self.settled.add(alert_id)
        self._checked.add(alert_id)

    def _take(self, res, rep: StepReport, tier: str = "all") -> None:
        """Write a stitcher's new and changed alerts and work out which ended. ``tier``: whose
        alerts these are: "fast" (the fast stitcher), "slow" (the full stitcher's, of which only
        the slow detectors' alerts are taken: the fast tier wrote the others, newer), or "all"."""
        for n in res.notices:
            if n in rep.notices or (self.tiered and n in self.notices):
                continue
            rep.notices.append(n)
            self.notices.append(n)
        alerts = res.alerts
        for a in alerts:
            self._det_of[a.id] = a.detector
        fast = self.fast_names
        if tier == "slow":
            alerts = [a for a in alerts if a.detector not in fast]
        # (xd) followers given as their heads' merged versions; the provisional step reads the
        # final alerts so too (a follower written provisional, then final: its provisional id is
        # withdrawn, its head confirmed in the merged version)
        self._final_view = None
        if self._cont is not None:
            alerts = self._cont.take(alerts)
            self._final_view = {**{a.id: a for a in res.alerts if a.id not in self._cont.head_of},
                                **{a.id: a for a in alerts}}
        if self._resumed_saved is not None:   # (rst2) given again after a restart: as the store keeps it
            self._stored_before([a.id for a in alerts if a.id not in self._checked])
        # An open alert comes back at every step; only versions that changed are written.
        changed = [a for a in alerts if self._written.get(a.id) != _version(a)]
        if self._pending_final:
            # (pf) a final head written with a pending follower: :meth:`_take_provisional` writes
            # it (merged again, or its final version), once; (rpf) a fast step, which has no
            # provisional alerts, leaves it to the next slow one (it wrote the head's own version
            # back, the slow step the merged one again: two versions a step while it grew)
            changed = [a for a in changed if a.id not in self._pending_final]
        # An acknowledged or cleared alert stays as it was at its reset: the detector's old state
        # goes on carrying it until it re-learns from the reset, and the re-judging from there
        # judges nothing before it (``detect`` on the same store never finds it again either).
        settled = self._settled([a.id for a in changed])
        # (an unchanged one was written, so checked, by this run: its status is known here; it
        # keeps the version the engine holds, with its status, not the stitcher's open copy)
        held = {a.id for a in alerts if a.id in self.settled}   # (``settled`` among them)
        if held:
            alerts = [a for a in alerts if a.id not in held]
            changed = [a for a in changed if a.id not in settled]
            self.counters["settled_kept"] += len(settled)
            # One this run had not seen (found again by a re-judging after a restart) is known as
            # the store keeps it, not as the old state carried it past its reset; nor is it new.
            self._known_as_stored([i for i in settled if i not in self.alerts])
        self._upsert(changed)
        rep.written_at = time.monotonic()
        rep.written[tier] = rep.written_at
        for a in changed:
            rep.tier_of[a.id] = tier
        new = []
        for a in alerts:
            if a.id not in self.alerts and a.id not in self.open_ids and a.id not in self._kept_before:
                new.append(a.id)
            self.alerts[a.id] = a
        rep.new += new
        rep.alerts += changed
        if not self.tiered:
            now_open = set(res.open_ids)
        else:
            ot = self._open_tier
            if tier == "fast":
                ot["fast"] = set(res.open_ids)
            else:
                # An id whose detector is not known yet (an alert open at a checkpoint, not found
                # again so far) counts as the slow tier's until the full stitcher says otherwise.
                ot["slow"] = {i for i in res.open_ids if self._det_of.get(i) not in fast}
                if tier == "all":
                    # (rst2) A re-judging before the resync of a restart: the full stitcher has
                    # judged only up to its checkpoint, behind the fast tier then, whose open
                    # alerts (from the checkpoint) stay open until the resync judges them.
                    ahead = ot["fast"] - ot["slow"] if self._resync and not self._resyncing else set()
                    ot["fast"] = (set(res.open_ids) - ot["slow"]) | ahead
            now_open = ot["fast"] | ot["slow"]
        if self._cont is not None:   # (xd) an open follower keeps its head open
            now_open = self._cont.open_ids(now_open)
        self._final_open = now_open
        # (al) ... and so does a pending (provisional) one, until its verdict (_take_provisional)
        now_open = now_open | self._pending_open
        ended = sorted(self.open_ids - now_open)
        # (ah) one new and already closed (its whole span in this step's readings: a batch, late
        # readings, a slow step) can no longer grow: ended now (its outputs were told it opened and
        # never that it ended: an action's ``ended_value`` never restored the load it shed)
        ended += [i for i in new if i not in now_open]
        rep.ended += ended
        # (ah) one this run told ended, open again (a continuation made it grow): told so; (rah) or
        # one an earlier run told ended (stored before the checkpoint this run resumed from, closed in
        # it; not a provisional alert confirmed open now)
        back = sorted(i for i in now_open - self.open_ids if self._was_told_closed(i) and i not in new)
        rep.reopened += back
        self._told_closed.difference_update(back)
        self._told_closed.update(i for i in ended if i in self.alerts)   # (rah: not one withdrawn meanwhile)
        self.open_ids = now_open
        self.counters["alerts_new"] += len(new)
        self.counters["alerts_updated"] += len(changed) - len(set(new) & {a.id for a in changed})
        self.counters["alerts_ended"] += len(ended)
        if tier != "fast" and (self.provisional or self._withdrawn_kept or self._pending_final
                               or getattr(res, "provisional", None)):
            self._take_provisional(res, rep, tier)

    def _was_told_closed(self, i: str) -> bool:
        """(ah) Told ended by this run (:attr:`_told_closed`); (rah) or by an earlier one: kept in the
        store by the checkpoint this run resumed from and not open in it (``open_ids`` holds those
        that were), not a provisional alert (one confirmed open now was never told ended). Asked
        only of an id not open that is open now."""
        return i in self._told_closed or (i in self._kept_before and i not in self.provisional)

    def _take_provisional(self, res, rep: StepReport, tier: str) -> None:
        """The provisional alerts of a full stitcher's step (:attr:`StreamConfig.provisional`),
        after its final ones were taken. Per meter it judged, its provisional set replaces the
        last: a provisional id now final is confirmed (its final version written exactly, the flag
        gone; an acknowledged one keeps its status); one neither given again nor final is
        withdrawn (deleted, as :func:`rejudge._withdraw` does, or, acknowledged or cleared by
        someone, kept with ``evidence.withdrawn`` saying why: an operator's row does not vanish);
        the others are written (new ones reported new: outputs, and actions that act on
        provisional alerts, open them)."""
        judged = set(getattr(res, "judged", ()) or ())
        final = {a.id: a for a in res.alerts} if getattr(self, "_final_view", None) is None else self._final_view
        fast = self.fast_names if tier == "slow" else frozenset()
        # (never an id the engine holds as final: a final alert stays final)
        # (one near a long blocker's alert is not written, but one written before stays: withdrawn
        # when its readings no longer make it, not when a blocker's spell comes near: that may not
        # blank it, and it would come back final)
        near = getattr(res, "provisional_near", None) or set()
        given = [a for a in getattr(res, "provisional", ()) if a.detector not in fast and a.id not in final
                 and (a.id in self.provisional or (a.id not in self.alerts and a.id not in near))]
        # (pf) A provisional follower is given as its head's merged version (issues 14/16: one change,
        # one alert, live), never under its own id: a provisional head's (written provisional), or a
        # final head's (:meth:`_take_pending_final`), as the final merge will give it.
        follows: dict[str, str] = {}
        onto: dict[str, Alert] = {}
        if self._cont is not None:
            from wattwatch.detect.continuation import own

            cand = {a.id: a for a in given}
            keep = {}
            for f, (_, h) in self._follows.items():   # (the head it was given under last: see pending)
                hv = cand.get(h) or final.get(h) or self.alerts.get(h)
                if f in cand and hv is not None:
                    keep[f] = own(hv)
            given, follows = self._cont.pending(given, keep)
            onto = {a.id: a for a in given if a.id in set(follows.values()) and a.id not in cand}
            given = [a for a in given if a.id not in onto]
            self._follows = {**{f: mh for f, mh in self._follows.items() if mh[0] not in judged},
                             **{f: (cand[f].meter_id, h) for f, h in follows.items()}}
        given = {a.id: a for a in given}
        confirmed = [final[i] for i in self.provisional if i in final]
        # (pv) withdrawn while someone had it in hand (its row kept, saying withdrawn), final after all:
        # the final alert as any confirmed one (its version written, status kept, the marks gone)
        after_all = [final[i] for i in self._withdrawn_kept if i in final]
        for a in after_all:
            self._withdrawn_kept.pop(a.id)
            log.info("alert %s (%s, %s) final after all: it was withdrawn as provisional", a.id, a.meter_id, a.detector)
        self.counters["provisional_final_after_withdrawal"] += len(after_all)
        confirmed += after_all
        confirmed_ids = {a.id for a in confirmed}
        gone = [a for i, a in self.provisional.items() if a.meter_id in judged and i not in given and i not in final]
        if confirmed:
            # (_take wrote the final version of each, but of one someone settled: written here,
            # its status kept by the store's upsert; then each one's end and score exactly)
            self._upsert([a for a in confirmed if a.id in self.settled])
            self._set_exact(confirmed)
            for a in confirmed:
                self._prov_max.pop(a.id, None)
            for a in confirmed:
                self.provisional.pop(a.id, None)
                if a.id in self.settled:   # kept by _take as it was: the final version, its status kept
                    a = dataclasses.replace(a, status=self.alerts[a.id].status if a.id in self.alerts else a.status)
                    rep.alerts.append(a)
                self.alerts[a.id] = a
                self._written[a.id] = _version(a)
                rep.confirmed.append(a.id)
                if a.id in self._prov_unsent:   # (a restart: the outputs may never have had it)
                    self._prov_unsent.discard(a.id)
                    rep.new.append(a.id)
                log.info("alert %s (%s, %s) confirmed: no longer provisional", a.id, a.meter_id, a.detector)
            self.counters["provisional_confirmed"] += len(confirmed) - len(after_all)
        gone = self._compacted_kept(gone, rep)
        if gone:
            self._withdraw_provisional(gone, rep)
        changed = [a for a in given.values() if self._written.get(a.id) != _version(a) and a.id not in self.settled]
        self._upsert(changed)
        self._set_exact(changed)
        for a in changed:
            e, sc = self._prov_max.get(a.id, (pd.Timestamp(a.end), a.score))
            self._prov_max[a.id] = (max(e, pd.Timestamp(a.end)), max(sc, a.score))
        for a in given.values():
            if a.id not in self.provisional and a.id not in self.alerts:
                rep.new.append(a.id)
                self.counters["provisional_written"] += 1
            elif a.id in self._prov_unsent:   # (a restart: written by the last run, maybe never output)
                rep.new.append(a.id)
            self._prov_unsent.discard(a.id)
            if a.id not in self.settled:
                self.alerts[a.id] = a
            self.provisional[a.id] = a
            self._det_of[a.id] = a.detector
        rep.alerts += changed
        for a in changed:
            rep.tier_of[a.id] = tier
        self._take_pending_final(onto, judged, final, rep, tier)
        # (pv) Which may still grow: per meter judged, as this judgement says; the others as before.
        popen = getattr(res, "provisional_open", None) or set()
        if follows:   # (pf) an open follower keeps its (provisional) head open
            popen = {follows.get(i, i) for i in popen}
        self._pending_held(popen, judged, rep)
        was_open = self.provisional_open
        self.provisional_open = {i for i in self.provisional_open | (set(given) & popen) if i in self.provisional
                                 and (i in popen or self.provisional[i].meter_id not in judged)}
        # (pc) Its condition ended (was open, is not, still provisional): told ``stopped`` at once, its
        # final verdict still pending (its ``ended`` comes with it, below or by a withdrawal, once).
        # Not ``ended``: the verdict may still make it grow (prov: a neutral_tamper alert that stopped
        # grew 2 h and 15 h longer), and an action keeps one ``ended`` per alert. One open again (it
        # grew) is told again when it stops again.
        self._prov_stopped -= self.provisional_open
        stop = sorted(i for i in was_open - self.provisional_open
                      if i in self.provisional and i not in self._prov_stopped)
        self._prov_stopped |= set(stop)
        self._prov_stopped &= set(self.provisional)
        rep.stopped += stop
        self.counters["provisional_stopped"] += len(stop)
        # (prov) Its end is told as a final alert's is (``ended``: the console's line, an InfluxDB
        # point's state, actions' ``ended``): when a final judgement says it can no longer grow. One
        # confirmed by a final judgement that holds it open ends later as any final alert; one it holds
        # closed ends now, if it was ever open as a provisional alert. Before, that one was never told
        # ended (it was never among the final open alerts). Not while it is provisional: its readings'
        # scores may still change with the long blocker's verdict, and a provisional alert told ended
        # when it stopped growing grew again (test_stream_imbalance_hold, 15 min: a neutral_tamper
        # alert told ended, then written 2 h and 15 h longer). (A withdrawn one is told by its withdrawal.)
        self._prov_opened |= self.provisional_open
        stopped = [i for i in sorted(confirmed_ids & self._prov_opened)
                   if i not in self.open_ids and i not in rep.ended]
        self._prov_opened -= confirmed_ids
        self._prov_opened &= set(self.provisional)
        rep.ended += stopped
        self._told_closed.update(stopped)   # (ah)
        self.counters["provisional_ended"] += len(stopped)

    def _pending_held(self, popen: set[str], judged: set, rep: StepReport) -> None:
        """(al) A final head whose only open part is a pending (provisional) follower is open, as the
        follower's final version will keep it (``Continuations.open_ids``): its own final part closed
        is not its end while the follower may still grow (pf showed it ``ended`` until the verdict,
        then open again). Per meter judged, as this judgement says (``popen``: open provisional ids,
        a follower's mapped to its head); the others as before. A head no longer held (the follower
        closed, withdrawn, or final: then the final judgement's open set holds it if it is open) and
        not open by the final judgement ends now."""
        if not (self._pending_open or self._pending_final):
            return
        pf = self._pending_final
        held = {h for h in self._pending_open if h in pf and pf[h].meter_id not in judged} | (set(popen) & set(pf))
        released = sorted(h for h in self._pending_open - held if h in self.open_ids and h not in self._final_open)
        self._pending_open = held
        kept = [h for h in rep.ended if h in held]   # (its own part closed in this step: not its end)
        self._told_closed.difference_update(kept)
        # (ah) one told ended before, held open again now (its follower pending after its end): told so
        back = sorted(h for h in held - self.open_ids if self._was_told_closed(h) and h not in rep.new)
        rep.reopened += back
        self._told_closed.difference_update(back)
        self._told_closed.update(released)
        self.open_ids = (self.open_ids - set(released)) | held
        if kept:
            rep.ended[:] = [h for h in rep.ended if h not in held]
        rep.ended += [h for h in released if h not in rep.ended]
        self.counters["alerts_ended"] += len(released) - len(kept)

    def _take_pending_final(self, onto: dict[str, Alert], judged: set, final: dict, rep: StepReport,
                            tier: str) -> None:
        """(pf) Final heads with a provisional follower (``onto``: head id -> its merged version,
        the follower ``pending``): written so, under the head's id (the follower never under its
        own). A head written so before whose meter was judged again without it (the follower
        withdrawn, or final now: then the carry holds it) goes back to its final version as the
        carry holds it, its end and score exactly (no lost head, no orphan id). An acknowledged or
        cleared head stays as it was (:meth:`_take`)."""
        from wattwatch.detect.continuation import own

        onto = {h: a for h, a in onto.items() if h not in self.settled}
        back = [h for h, a in self._pending_final.items() if h not in onto and a.meter_id in judged]
        out = []
        for h in back:
            self._pending_final.pop(h)
            ev = self._cont.events.get(h)
            v = ev.merged() if ev is not None else final.get(h) or (own(self.alerts[h]) if h in self.alerts else None)
            if v is None or h in self.settled:   # (gone meanwhile: a re-judging withdrew it)
                self._pending_max.pop(h, None)
                continue
            out.append(v)
            log.info("alert %s (%s): its provisional continuation %s", h, v.meter_id,
                     "confirmed" if "continued" in v.evidence else "withdrawn: back to its own version")
        out += [a for a in onto.values()]
        self._pending_final.update(onto)
        changed = [a for a in out if self._written.get(a.id) != _version(a)]
        self._upsert(changed)
        shrunk = [a for a in out if a.id in self._pending_max and a.id not in onto
                  and (pd.Timestamp(a.end) < self._pending_max[a.id][0] or a.score < self._pending_max[a.id][1])]
        if shrunk:
            self.store.con.executemany('UPDATE alerts SET "end" = ?::TIMESTAMPTZ, score = ? WHERE id = ?',
                                       [[a.end, a.score, a.id] for a in shrunk])
        for a in out:
            if a.id in onto:
                e, sc = self._pending_max.get(a.id, (pd.Timestamp(a.end), a.score))
                self._pending_max[a.id] = (max(e, pd.Timestamp(a.end)), max(sc, a.score))
            else:
                self._pending_max.pop(a.id, None)
            self.alerts[a.id] = a
        # (rpf) the outputs get the version written last (a head first final in this step was
        # written by _take as its own version too: told twice, an action's opened with the first)
        again = {a.id for a in changed}
        rep.alerts[:] = [a for a in rep.alerts if a.id not in again] + changed
        for a in changed:
            rep.tier_of[a.id] = tier

    def _set_exact(self, alerts: list[Alert]) -> None:
        """Set the stored end and score of ``alerts`` to theirs: the store's upsert keeps the
        greatest (an alert only grows), but a provisional version may reach further than the
        final one, or than its next provisional version. Only where one written before reached
        further (``_prov_max``; the usual alert grows, and an UPDATE a step costs ms)."""
        alerts = [a for a in alerts if a.id in self._prov_max
                  and (pd.Timestamp(a.end) < self._prov_max[a.id][0] or a.score < self._prov_max[a.id][1])]
        if alerts:
            self.store.con.executemany('UPDATE alerts SET "end" = ?::TIMESTAMPTZ, score = ? WHERE id = ?',
                                       [[a.end, a.score, a.id] for a in alerts])

    def _compacted_kept(self, gone: list[Alert], rep: StepReport) -> list[Alert]:
        """``gone`` without the provisional alerts of meters with compacted hours that the judging
        can no longer tell again (as :func:`rejudge._compacted_guard` keeps final ones: an alert that
        began before the compaction cut, or within the detector's reach and post-rule horizon after
        it): the readings that would confirm or withdraw them are hourly rows now. They stay in the
        store as written (still marked provisional: no final verdict came) and are no longer tracked.

        (pc) Each is told ended in ``rep`` (if it was ever open as a provisional alert; before,
        never: outputs that opened it kept it open for good), its version with
        ``evidence.undecided`` the reason (written to its row: the restart after the checkpoint of
        this step does not read it back, one from an older checkpoint tells it again:
        :meth:`_load_provisional`)."""
        ms = sorted({a.meter_id for a in gone if a.meter_id in self.cut})
        if not ms:
            return gone
        since = rejudge.compacted_since(self, ms)
        kept = [a for a in gone if (a.meter_id, a.detector) in since
                and pd.Timestamp(a.start).timestamp() < since[(a.meter_id, a.detector)]]
        marked = []
        for a in kept:
            cut = pd.Timestamp(self.cut[a.meter_id], unit="s", tz="UTC").isoformat()
            waits = ", ".join(a.evidence.get("waits_for") or ["its blockers"])
            why = (f"no final verdict: the meter's readings up to {cut} were compacted to hourly rows before "
                   f"{waits}'s verdict on this alert's readings; kept as written, still provisional")
            u = dataclasses.replace(a, evidence={**a.evidence, "undecided": why})
            marked.append(u)
            self.provisional.pop(a.id, None)
            self._prov_max.pop(a.id, None)
            self._prov_unsent.discard(a.id)
            self.alerts[a.id] = u
            self._written[a.id] = _version(u)
            rep.alerts.append(u)
            if (a.id in self._prov_opened or a.id in self.provisional_open) and a.id not in rep.ended:
                rep.ended.append(a.id)
                self.counters["provisional_undecided_ended"] += 1
            self.provisional_open.discard(a.id)
            self._prov_opened.discard(a.id)
            log.info("provisional alert %s (%s, %s) ended undecided, kept as written: its meter was compacted "
                     "before a final verdict on it, which can no longer come", a.id, a.meter_id, a.detector)
        if marked:   # (its status as the store keeps it: only the evidence changes)
            self.store.con.executemany("UPDATE alerts SET evidence = ? WHERE id = ?",
                                       [[json.dumps(u.evidence, default=str), u.id] for u in marked])
        self.counters["provisional_kept_compacted"] += len(kept)
        keep = {a.id for a in kept}
        return [a for a in gone if a.id not in keep]

    def _end_undecided(self, rep: StepReport) -> None:
        """(pc) At the first step: the provisional alerts read back from the last run whose meters
        were compacted since (``store compact`` runs while no watcher holds the store) before their
        final verdict are ended now (:meth:`_compacted_kept`), not when (if ever) their meters'
        next readings are judged: before, such an alert stayed listed open (``provisional_open``)
        until then, and was never told ended. Only the meters whose carry was forgotten for it
        (:meth:`_restart_compacted`): one compacted behind where the checkpoint had judged it goes
        on from its carry, which still holds the readings the verdict needs."""
        self._undecided_due = False
        gone = self._carry_forgotten
        if self.provisional and gone:
            self._compacted_kept([a for a in self.provisional.values() if a.meter_id in gone], rep)

    def _withdraw_provisional(self, gone: list[Alert], rep: StepReport) -> None:
        """Withdraw provisional alerts the final judgement did not find (see
        :meth:`_take_provisional`); each is reported ended (outputs, actions' ``ended``) with
        ``evidence.withdrawn`` the reason, and logged."""
        delete, keep = [], []
        for a in gone:
            waits = ", ".join(a.evidence.get("waits_for") or ["its blockers"])
            why = (f"withdrawn: judged again with {waits}'s findings on these readings, they no longer make this "
                   f"alert ({waits} explains them, or they make another)")
            ev = {**a.evidence, "withdrawn": why}
            h = self._cont.head_of.get(a.id) if self._cont is not None else None
            if h is not None:   # (pf) written under its own id by an earlier run: now its head's
                ev.update(withdrawn=withdrawn.CONTINUED_FINAL.format(head=h), continued_by=h)
                why = ev["withdrawn"]
            w = dataclasses.replace(a, evidence=ev)
            (keep if a.id in self.settled else delete).append(w)
            self.provisional.pop(a.id, None)
            self.provisional_open.discard(a.id)
            if a.id not in self.settled:   # (a kept one: what the store keeps of it, for its final version)
                self._prov_max.pop(a.id, None)
            self._prov_unsent.discard(a.id)
            self._det_of.pop(a.id, None)
            rep.withdrawn[a.id] = w
            rep.ended.append(a.id)
            log.info("alert %s (%s, %s from %s) %s", a.id, a.meter_id, a.detector, a.start, why)
        con = self.store.con
        con.execute("BEGIN TRANSACTION")
        try:
            if delete:   # (al) what ``alerts show`` says of it once its row is gone
                withdrawn.keep(con, {w.id: w.evidence["withdrawn"] for w in delete})
                con.execute(f"DELETE FROM alerts WHERE id IN ({', '.join('?' for _ in delete)})", [a.id for a in delete])
            for w in keep:   # settled by someone: the row stays, saying it was withdrawn and why
                con.execute("UPDATE alerts SET evidence = ? WHERE id = ?", [json.dumps(w.evidence, default=str), w.id])
            # (pv) until a checkpoint after this step's outputs: a restart tells them (_load_withdrawn)
            con.executemany("INSERT INTO stream_withdrawn (name, id, alert, withdrawn_at) VALUES (?, ?, ?, now())",
                            [[self.name, w.id, w.to_json()] for w in delete + keep])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for w in delete:
            self.alerts.pop(w.id, None)
            self._written.pop(w.id, None)
            self._kept_before.discard(w.id)
            self._checked.discard(w.id)
            self._told_closed.discard(w.id)   # (rah) as ``alerts``: found again, it is new
        for w in keep:
            self.alerts[w.id] = w
            self._written[w.id] = _version(w)
            self._withdrawn_kept[w.id] = w
        self.counters["provisional_withdrawn"] += len(gone)
        self.counters["provisional_withdrawn_settled"] += len(keep)
        self.counters["alerts_withdrawn"] += len(delete)

    def add_events(self, alerts: list[Alert]) -> tuple[list[Alert], list[str]]:
        """Store alerts that sources made themselves (a signed tamper report is an alert as it
        arrives, not a reading to judge): upserted in one transaction, stable ids, so a report
        delivered twice is one alert. Returns (changed, new ids)."""
        changed = [a for a in alerts if self._written.get(a.id) != _version(a)]
        known = self._take_statuses(alerts)
        self._upsert(changed)
        new = []
        for a in alerts:
            if a.id not in self.alerts and a.id not in known:
                new.append(a.id)
            self.alerts[a.id] = a
        new = list(dict.fromkeys(new))
        self._events_open(alerts)
        self.counters["event_alerts_new"] += len(new)
        self.counters["event_alerts_updated"] += len(changed) - len(set(new) & {a.id for a in changed})
        return changed, new

    def _events_open(self, alerts: list[Alert]) -> None:
        """(le2) Keep :attr:`events_open` as the reports say (in arrival order: the last one stands)."""
        from wattwatch.sources.tamper import ongoing

        for a in alerts:
            if ongoing(a):
                self.events_open[a.id] = a
            else:
                self.events_open.pop(a.id, None)

    def add_health(self, alerts: list, rep: StepReport) -> None:
        """Alerts a source raises about its own devices (a Modbus device whose response time
        climbs): upserted like the core's, kept open until a version says ``evidence.ended``. A
        source gives every version ``ended`` (false while open) and names itself in
        ``evidence.source``: that is how a restarted engine finds the ones still open in the store
        (:meth:`_load_health`) and hands them back to their source (:meth:`resume_sources`)."""
        if not alerts:
            return
        known = self._take_statuses(alerts)
        self._upsert(alerts)
        for a in alerts:
            if a.id not in self.alerts and a.id not in known:
                rep.new.append(a.id)
                self.counters["alerts_new"] += 1
            else:
                self.counters["alerts_updated"] += 1
            self.alerts[a.id] = a
            rep.alerts.append(a)
            if a.evidence.get("ended"):
                if a.id in self.health_open:
                    self.health_open.discard(a.id)
                    rep.ended.append(a.id)
                    self.counters["alerts_ended"] += 1
            else:
                self.health_open.add(a.id)

    def flush(self) -> StepReport:
        """No readings will follow: judge every pending reading as final (the end of a replay)."""
        return self.step(final=True)

    def due(self) -> bool:
        """A checkpoint is due: ``checkpoint_s`` since the last, put off while the slow tier's
        worker judges (it would wait for it) until twice that (then it waits: a slow clock that
        ticks every step would otherwise put checkpoints off for as long as the catch-up lasts)."""
        since = time.monotonic() - self._last_ck
        return since >= self.scfg.checkpoint_s and (not self._busy() or since >= 2 * self.scfg.checkpoint_s)

    def _profile_ready(self, final: bool, rep: StepReport) -> None:
        """Profile (once) the meters whose first ``profile_days`` are stored; on ``final``, every
        meter, on the window ``detect`` gives a history of that length."""
        from wattwatch import api

        need = [m for m in self.last if m not in self.profiled]
        if not need:
            return
        day = 86400e6
        span_need = self.cfg.profile_days * day
        ready = [m for m in need if final or self.last[m] - self.first[m] >= span_need]
        if not ready:
            return
        self.settle(rep)   # the detectors' state changes: not while the slow tier scores
        first = pd.to_datetime([self.first[m] for m in ready], unit="us", utc=True)
        # The window detect takes on a history of at least profile_days / profile_max_share:
        # exactly profile_days (on final, the meter's whole span as detect sees it).
        last = [self.last[m] if final else self.first[m] + int(span_need / self.cfg.profile_max_share) for m in ready]
        cat = pd.DataFrame({"meter_id": ready, "first_ts": first,
                            "last_ts": pd.to_datetime(last, unit="us", utc=True),
                            "cadence_s": self.store.catalogue(ready).set_index("meter_id")["cadence_s"]
                            .reindex(ready).to_numpy(float)})
        notes = api._ensure_state(self.store, self.dets, cat, self.cfg, True, {})
        rep.notices += notes
        self.notices += notes
        self.profiled.update(ready)
        self.dirty.update(ready)
        self.counters["profiled"] += len(ready)


# A reject's reason as the ingest gives it ends with hints for a mapping file or [options], which a site
# config has no place for: the live log leaves them out.
_FILE_HINT = re.compile(r" \((?:plausible range of (\w+)[^()]*(?:\([^()]*\)[^()]*)*|[^()]*(?:\[options\]|mapping)[^()]*)\)")
_SAY_FIRST = 5


def _say_rejects(frame: pd.DataFrame, rejects: list, source: str, said: Counter, kept: bool = False) -> None:
    """Log a batch's rejected readings by meter and time (``_line`` is the frame's row + 1): a
    source's first five, then every hundredth (a device that keeps sending a bad value does not
    flood the log; the engine's ``rejected`` counter has them all). ``kept``: these are values
    dropped from readings that were stored (``values_dropped``)."""
    n0 = said[source]
    said[source] += len(rejects)
    picks = [j for j in range(min(len(rejects), max(0, _SAY_FIRST - n0)))]
    picks += [j for j in range((-(n0 + 1)) % 100, len(rejects), 100) if n0 + j + 1 > _SAY_FIRST]
    for j in sorted(set(picks)):
        _, line, _, why = rejects[j]
        where = "a reading"
        if 0 < line <= len(frame):
            row = frame.iloc[line - 1]
            where = f"meter {str(row.get('meter_id'))!r} at {row.get('ts')}"
        log.warning("%s: reading #%d %s: %s: %s", source, n0 + j + 1,
                    "kept without a value" if kept else "rejected", where,
                    _FILE_HINT.sub(lambda m: f" (plausible range of {m[1]})" if m[1] else "", why))


def _say_conflicts(counts, source: str, said: Counter) -> None:
    """Log what an ingest said of readings given again with other values than the ones kept (the
    store's notes, with an example): a source's first five such ingests, then every hundredth (the
    engine's ``conflicts`` counter has them all)."""
    key = ("conflicts", source)
    said[key] += 1
    if said[key] <= _SAY_FIRST or said[key] % 100 == 0:
        for note in counts.notes:
            if "with different values" in note:
                log.warning("%s (ingest #%d with conflicts)", note, said[key])


# The live cadence check (StreamEngine._cadence_check): how often in data time, over how many of a
# meter's learned gaps (detect's notice needs 48 gaps at the new cadence: 480 learned gaps hold 48
# at ten times the cadence, 1 -> 10 min; 15 min -> 1 h has 120).
CADENCE_CHECK_S = 6 * 3600.0
CADENCE_GAPS = 480
# detect's notice needs this many gaps at the new cadence (api._cadence_change_notices' min_gaps).
CADENCE_MIN_GAPS = 48


def fast_tier(dets: list, meters: list[str], reach_s: float) -> frozenset[str]:
    """Names of the detectors whose effective reach back and ahead (:func:`core.reaches`: their
    own and their blockers' reach and alert horizons; readings counted at each meter's cadence)
    is at most ``reach_s`` on every meter of ``meters``. Ahead: their scores become final within
    that much data time, so judging them every step opens their alerts at once; back: what a step
    of theirs re-reads (the fast tier's carried tail). A blocker's reach is part of the reach of
    every detector it blocks, so the tier is closed under blocking: it never waits for a slow
    detector's findings."""
    if not meters:
        return frozenset()
    reach = core.reaches(dets, meters)
    cad = np.array([core._cadence(dets, m) for m in meters], float)
    cad = np.where(np.isfinite(cad) & (cad > 0), cad, 0.0)
    out = set()
    for d in dets:
        r = reach[d.name]
        ahead = np.asarray(r.ahead_s, float) + np.asarray(r.ahead_n, float) * cad
        back = np.asarray(r.back_s, float) + np.asarray(r.back_n, float) * cad
        both = np.maximum(ahead, back)
        if np.all(np.isfinite(both)) and float(np.max(both, initial=0.0)) <= reach_s:
            out.add(d.name)
    # A detector idle on every meter has no reach whatever its blockers: it stays with them.
    dets = core.order(dets)
    for d in dets:   # in blocking order: a blocker is decided before what it blocks
        kinds = set(d.judges)
        if any(b.name not in out for b in dets if b is not d and kinds & {k for e in b.explains for k in e.kinds}):
            out.discard(d.name)
    return frozenset(out)


def checkpoint_parts(engine: "StreamEngine") -> dict:
    """The bytes of the checkpoint ``engine`` would write now, by part (sm, issue 16): ``tail`` and
    ``hours`` (the carried readings and closed bins, Parquet) with ``tail_columns`` /
    ``hours_columns`` (each column's compressed bytes in it, from the file's metadata; the rest is
    the file's own metadata), ``meta`` (JSON) with ``meta_keys`` (each key's JSON bytes)."""
    engine.settle()
    meta, tail, hours = engine._checkpoint_payload()
    out = {"meta": len(json.dumps(meta)), "meta_keys": {k: len(json.dumps(v)) for k, v in meta.items()}}
    for part, blob in (("tail", tail), ("hours", hours)):
        out[part] = len(blob or b"")
        cols: dict[str, int] = {}
        if blob:
            md = pq.ParquetFile(io.BytesIO(blob)).metadata
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                for c in range(rg.num_columns):
                    cc = rg.column(c)
                    cols[cc.path_in_schema] = cols.get(cc.path_in_schema, 0) + cc.total_compressed_size
        out[part + "_columns"] = cols
    return out


def _runs(mid: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(ck) The runs of equal meter ids in ``mid`` (a frame's rows by meter): each run's id (str)
    and first row; from a Categorical's codes without a string per row."""
    if not len(mid):
        return np.array([], object), np.zeros(0, np.int64)
    if isinstance(mid.dtype, pd.CategoricalDtype):
        codes = mid.array.codes
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        return np.asarray(mid.cat.categories.astype(str), object)[codes[starts]], starts
    names = mid.astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    return names[starts], starts


def _held_bytes(df: pd.DataFrame | None) -> dict[str, int]:
    """Bytes each column of ``df`` holds in memory as it is held (codes and categories, a sparse
    array's values and index)."""
    if df is None:
        return {}
    return {c: int(df[c].array.nbytes) for c in df.columns}


def _newest_stored(meters: np.ndarray, hi: np.ndarray, rows: pd.DataFrame | None) -> np.ndarray:
    """Per meter of ``meters`` (``hi``: its newest stamp in a batch, epoch µs, floored from the
    frame's time) the later of that and its newest reading the store kept from it (``rows``). The
    store rounds a time to the microsecond (DuckDB's cast of a nanosecond time: ``...01.284057692``
    is stored ``...01.284058``): a meter's ``last`` floored from the frame was a microsecond before
    its newest stored reading, which was in no step's window ``(fed, last]`` then, judged only once
    a later reading came, and never when none did (a flush: the stream lost it, and with it what
    the reading says, e.g. where a packet-loss window truncated at the meter's last reading ends;
    pl1). Meters of ``rows`` not in ``meters`` are left out."""
    if rows is None or not len(rows):
        return hi
    t = rows["ts"].to_numpy("datetime64[us]").astype(np.int64)
    at = pd.Index(meters).get_indexer(rows["meter_id"].astype(str).to_numpy())
    ok = at >= 0
    out = hi.copy()
    np.maximum.at(out, at[ok], t[ok])
    return out


def _by_meter_time(df: pd.DataFrame) -> bool:
    """Rows already in the order a stable sort by meter then time gives (that sort is then the
    identity)."""
    if len(df) < 2:
        return True
    m = df["meter_id"].to_numpy(object)
    t = df["ts"].to_numpy("datetime64[us]")
    after, same = m[1:] > m[:-1], m[1:] == m[:-1]
    return bool(np.all(after | (same & (t[1:] >= t[:-1]))))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"meter_id": pd.Series([], dtype="string"), "ts": pd.Series([], dtype="datetime64[us, UTC]")})


def _version(a: Alert) -> tuple:
    return (a.end, a.score, a.severity, a.message, a.action, json.dumps(a.evidence, sort_keys=True, default=str))


def _us(x) -> int:
    if x is None or pd.isna(x):
        return NEG
    return int(pd.Timestamp(x).tz_convert("UTC").value // 1000) if pd.Timestamp(x).tzinfo else \
        int(pd.Timestamp(x).value // 1000)


# ------------------------------------------------------------------------------------ asyncio loop


class Inbox:
    """Batches from every source, taken all at once by the engine task (a micro-batch)."""

    def __init__(self, max_pending: int = 64):
        self.items: list = []
        self.max_pending = max_pending
        self.changed = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()

    async def put(self, batch) -> None:
        while len(self.items) >= self.max_pending:
            self.space.clear()
            await self.space.wait()
        self.items.append(batch)
        self.changed.set()

    def put_nowait(self, batch) -> None:
        self.items.append(batch)
        self.changed.set()

    def take(self) -> list:
        out, self.items = self.items, []
        self.changed.clear()
        self.space.set()
        return out


def freeze_heap() -> None:
    """Move what the process holds once the engine is warm (its modules, detectors, state and
    history: ~130k container objects at 200 meters at 1 min) out of the cyclic collector's way
    (``gc.freeze``), its garbage collected first. The collector's full passes then scan only what
    later steps made: at 200 meters at 1 min they took ~80-90 ms of CPU each, twice in 40 fast
    steps, a p99 step of their own (rfc, issue 16). Reference counting still frees frozen objects;
    :func:`run` hands them back to the collector when it ends (``gc.unfreeze``)."""
    gc.collect()
    gc.freeze()


async def run(engine: StreamEngine, sources: list, stop: asyncio.Event, *, tick_s: float = 1.0,
              on_step=None, flush_at_end: bool = False, outputs=()) -> None:
    """Run ``sources`` into ``engine`` until ``stop`` is set (or, with ``flush_at_end``, until every
    source is done: then every pending reading is judged as final). ``on_step(report, batches)``
    is called after each step (for the console and the benchmark). ``outputs``
    (:class:`wattwatch.sinks.Output`) get each step's committed readings and alert changes after
    the store has them, and are closed at the end."""
    from wattwatch.sinks import deliver

    outputs = list(outputs)
    # Every call into the engine (and the outputs it feeds) runs on one thread of its own, in
    # order: a run cancelled while a step is in its thread (Ctrl-C) has its closing checkpoint
    # queued behind that step, never beside it on the same DuckDB connection and engine state.
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wattwatch-engine")
    loop = asyncio.get_running_loop()

    def call(fn, *a):
        return loop.run_in_executor(pool, functools.partial(fn, *a))

    # A step that raised stops the run, and no closing checkpoint follows it (as after kill -9):
    # its batches were not acknowledged and its outputs may not have had them, so the sources'
    # positions must not be saved past them (a tamper source would refuse the report the broker
    # delivers again as a duplicate: nothing would ever act on it); the next start resumes from
    # the checkpoint before, as after a kill.
    broken: list[BaseException] = []

    async def step(fn, *a):
        try:
            return await call(fn, *a)
        except Exception as exc:
            broken.append(exc)
            raise

    engine.resume_sources(sources)
    from wattwatch.actions.base import drop_removed

    drop_removed(engine.store.con, outputs)   # jobs pending for actions the site no longer has
    inbox = Inbox(engine.scfg.max_pending)
    ctl = _channel(engine)
    tasks = {asyncio.create_task(_guard(s, inbox, stop), name=f"source:{s.name}"): s for s in sources}
    try:
        # What the store already holds beyond the checkpoint (a restart) is judged first.
        rep = await step(engine.step)
        freeze_heap()
        deliver(outputs, "alerts", rep, engine)
        if on_step:
            on_step(rep, [])
        while True:
            if not inbox.items:
                try:
                    await asyncio.wait_for(inbox.changed.wait(), tick_s)
                except asyncio.TimeoutError:
                    pass
            batches = inbox.take()
            everything_done = all(s.done for s in sources) and not inbox.items
            rep = await step(_work, engine, batches, sources, outputs)
            if on_step:
                on_step(rep, batches)
            if ctl is not None:   # `alerts ack|clear|show` handed over by commands (control.py)
                await call(ctl.serve, engine)
            if stop.is_set() and not inbox.items:
                break
            if everything_done and all(t.done() for t in tasks):
                if flush_at_end:
                    rep = await step(engine.flush)
                    deliver(outputs, "alerts", rep, engine)
                    if on_step:
                        on_step(rep, [])
                break
    finally:
        gc.unfreeze()   # (freeze_heap: this process's objects are the collector's again)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in sources:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: close failed: %s", s.name, exc)
        # The slow tier's running judgement: its alerts to the outputs (before the checkpoint
        # saves past them, and before the outputs close). A judgement that failed is said, and
        # raised once the outputs are closed (no checkpoint is written after it).
        failed = None
        try:
            held = await call(_deliver_held, engine, outputs)
        except Exception as exc:  # noqa: BLE001
            log.error("%s: the slow tier's judgement failed: %s: %s", engine.name, type(exc).__name__, exc)
            held, failed = None, exc
        if held is not None and on_step:
            on_step(held, [])
        if broken:
            log.error("%s: a step failed (%s: %s); no checkpoint after it: the next start goes on from "
                      "the one before", engine.name, type(broken[0]).__name__, broken[0])
        else:
            await call(engine.checkpoint, {s.name: s.position() for s in sources})
        await call(deliver, outputs, "close")
        if ctl is not None:
            ctl.close()
        pool.shutdown(wait=False)
        if failed is not None:
            raise failed


def _channel(engine):
    """The folder commands hand requests to this watcher through (none for an in-memory store)."""
    from wattwatch.runners import control

    path = getattr(engine.store, "path", None)
    if path is None or str(path) == ":memory:":
        return None
    try:
        return control.Channel(path)
    except OSError as exc:
        log.warning("%s: no command channel (alerts ack/clear must wait for the watcher to stop): %s",
                    control.folder(path), exc)
        return None


async def _guard(source, inbox: Inbox, stop: asyncio.Event) -> None:
    try:
        await source.run(inbox.put, stop)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a source that dies is said, the others go on
        source.status = f"failed: {type(exc).__name__}"
        source.counters["failures"] += 1
        source.done = True
        log.error("%s: stopped: %s: %s", source.name, type(exc).__name__, exc)


def _work(engine: StreamEngine, batches: list, sources: list, outputs=()) -> StepReport:
    from wattwatch.sinks import deliver

    by = {s.name: s for s in sources}
    n = 0
    if batches:
        frames = [b.frame for b in batches if len(b.frame)]
        if frames:
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            n = len(frame)
            engine.add(frame, source="+".join(sorted({b.source for b in batches})))
        events = [a for b in batches for a in b.alerts]
        changed, new = engine.add_events(events) if events else ([], [])
    else:
        changed, new = [], []
    rep = engine.step()
    if n:
        # (ovl) After the step: the store's COMMIT of the readings (run beside the judging,
        # StreamConfig.ingest_thread) is behind the step; the outputs still get them before the alerts.
        deliver(outputs, "readings", frame)
    rep.readings = n
    rep.alerts = changed + rep.alerts
    rep.new = new + rep.new

    if engine._health_gone:   # open alerts of sources taken out of the config (resume_sources)
        gone, engine._health_gone = engine._health_gone, []
        engine.add_health(gone, rep)
    for s in sources:   # device health the sources found (e.g. a climbing response time)
        health = getattr(s, "health", None)
        if health is not None:
            engine.add_health(health(), rep)
    if engine.silence is not None:   # meters that stopped answering (runners/silence.py)
        engine.silence.heard(batches, sources)
        engine.add_health(engine.silence.check(sources), rep)
    deliver(outputs, "alerts", rep, engine)
    # The store and the outputs have what the batches brought: the sources may forget them (MQTT
    # acknowledges the messages now). Not before the outputs: a watcher that dies between them
    # gets the messages again from the broker, and the outputs have them then (at least once; an
    # action skips what its log says it did); acknowledged before, they were gone for good.
    for b in batches:
        s = by.get(b.source)
        if s is not None:
            s.committed(b.token)
    if engine.due():
        # The slow tier's judgement the checkpoint waits for: its alerts reach the outputs before
        # the checkpoint saves past them (at least once, as every step's).
        held = _deliver_held(engine, outputs)
        if held is not None:
            _merge(rep, held)
        engine.checkpoint({s.name: s.position() for s in sources})
    return rep


def _deliver_held(engine: StreamEngine, outputs) -> StepReport | None:
    """Settle the slow tier and deliver what it took outside a step; that report, if it took
    any alert or ended one (None otherwise)."""
    from wattwatch.sinks import deliver

    held = engine.take_held()
    if held is None or not (held.alerts or held.ended or held.stopped or held.withdrawn or held.reopened):
        return None
    deliver(outputs, "alerts", held, engine)
    return held


def _merge(rep: StepReport, held: StepReport) -> None:
    """Report in ``rep`` (already delivered) what ``held`` took besides (for the console)."""
    rep.alerts += held.alerts
    rep.new += held.new
    rep.ended += held.ended
    rep.notices += [n for n in held.notices if n not in rep.notices]
    rep.tier_of.update(held.tier_of)
    rep.written.update(held.written)
    rep.slow_cpu_s += held.slow_cpu_s
    rep.slow_taken += held.slow_taken
    rep.confirmed += held.confirmed
    rep.withdrawn.update(held.withdrawn)
    rep.stopped += held.stopped
    rep.reopened += held.reopened
