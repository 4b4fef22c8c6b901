"""Stitched scoring (DESIGN §1.2): judge a meter's readings piece by piece with a carry.

The carry is what the next piece needs to give every reading the score, and every alert the
span and id, that judging all readings at once gives:

- per meter, the tail of readings the pending ones reach back to (each detector's effective reach,
  :func:`core.reaches`), from the earliest point where an alert may still be growing; kept in meter
  and time order, so that a piece is merged in by whole per-meter blocks, not sorted in;
- per meter and detector, that point (the post-rules' clean point) and how far scores are final;
- per meter, how many readings were dropped before the tail (for detectors aligned on positions)
  and whether the tail still starts at the meter's first reading;
- per reading of the tail and detector, its score once it is final (columns ``_c:<detector>`` and
  ``_k:<detector>``, by name: what a column holds does not depend on the order of the detectors):
  a detector then scores only its pending readings and those its open alerts span, with its own
  reach before them, not the whole tail the longest reach keeps (:func:`core.run`'s ``known``).
  Held only where a later piece reads them (:meth:`Stitcher._needed`: from the detector's own
  clean or pending point, and from where the detectors it blanks read its findings; before that
  a score is held as known and NaN, which nothing reads), each column in the smallest exact form
  (:func:`_compact`: int8 codes of a few values, float32 where that is exact, sparse where few
  are held). Not checkpointed (:meth:`Stitcher.carry`): a carry loaded from a checkpoint is
  scored whole once. A detector whose known scores saved nothing (a reach of hours each way:
  packet_loss) keeps none for a while, and its columns leave the tail meanwhile (:func:`_without_unkept`);
- per meter and detector that carries its closed bins (``carry_cls``, a :class:`~wattwatch.detect.base.BinCarry`:
  baseline_macd its hours, learned_ensemble its grid's bins), those bins' aggregates
  (:meth:`Stitcher.hour_carry`, checkpointed), from as far back as the detector's own reach needs
  them: its raw readings are then kept only for the bins not closed yet (its own bin and its
  blockers' reach, not baseline_macd's 1,000-odd hours of averages, week and recalibration, or the
  learned ensemble's 60 hours of features and persistence).

Each :meth:`Stitcher.feed` returns the readings whose scores became final in that piece and the
alerts found so far from the clean points on, as upserts: an alert keeps its id (meter, code,
detector, start) as it grows, is reported open while it may grow, and is never reported twice
with different starts. :meth:`Stitcher.flush` ends the stream (no readings will follow).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.detect import core
from wattwatch.detect.base import Detector
from wattwatch.detect.frame import _PER_SECOND, AUX, CHANNEL_NAMES, meter_names, prepare, seg_bounds

KNOWN = "_k:"             # tail column prefix: ``_k:<detector>`` true = its score ``_c:<detector>`` is final
RUNS_AS_SLICES = 64       # a merge of at most this many runs of rows copies slices (see _merge)
UNKEPT_PIECES = 32        # pieces a detector's known scores are not kept after they saved nothing
# Between the pieces of a stream, hold a tail (not one of compact readings) with room per meter
# (_Room): a piece's readings written after their meters', the front cut by moving a start, nothing
# else moved (False: the tail as a frame, merged, cut and put back at every piece: the reference)
ROOM = True
ROOM_SPARE = 0.25         # room made per meter, as a share of its readings (when its block is made)
ROOM_LEAST = 8            # ... and at least this many rows
# The cut tail, the meters not judged put back and compacted as columns, one frame built at the end
# (False: a frame built after each pass, as before; the two are compared in tests: tail)
FUSED_TAIL = True


@dataclass
class Step:
    """What one piece produced."""

    alerts: list[Alert] = field(default_factory=list)   # upserts: new or grown alerts
    open_ids: set[str] = field(default_factory=set)     # of those, the ones that may still grow
    scores: pd.DataFrame | None = None                  # meter_id, ts, detector, score
    notices: list[str] = field(default_factory=list)
    unclean: set[str] = field(default_factory=set)       # meters whose clean point was not clean (core)
    # Alerts final but for long blockers' decisions (core.run's ``provisional``) of the meters
    # judged (``judged``): each replaces what the last piece that judged the meter gave
    provisional: list[Alert] = field(default_factory=list)
    provisional_near: set[str] = field(default_factory=set)   # (core.Result.provisional_near)
    provisional_open: set[str] = field(default_factory=set)   # (core.Result.provisional_open)
    judged: set[str] = field(default_factory=set)


class Stitcher:
    """Feed pieces of readings (any meters, each meter's pieces in time order); see the module."""

    def __init__(self, detectors: list[Detector], keep_scores: bool = True, known_scores: bool = True,
                 compact_readings: bool = False, columns: frozenset[str] | None = None, calm: bool = True,
                 cut: dict[str, float] | None = None, provisional: float | None = None):
        self.detectors = core.order(detectors)
        # Also give provisional alerts (Step.provisional): core.run's ``provisional`` (seconds:
        # blockers whose blanking horizon exceeds it are waited for only by final alerts).
        self.provisional = provisional
        self.keep_scores = keep_scores
        # Meters whose readings every detector finds calm from their times (Detector.calm_meters:
        # no score its post-rules would use can reach the threshold) are not judged while nothing
        # of theirs is open: their tail takes the piece and is cut, clean and final points move on,
        # as judging them would (see _calm). Only without scores to give (keep_scores False),
        # which judging would compute.
        self.calm = calm
        self.calm_fed = 0   # readings of calm meters taken without judging them (for measuring)
        # The reading channels the tail keeps (None: every one a piece brings): with the channels
        # its detectors read (:func:`read_channels`), the others are not carried, merged and cut at
        # every piece (the core judges them NaN, which gives those detectors the same scores and
        # alerts: ``Detector.reads``).
        self.columns = columns
        # Hold the tail's readings in compact exact columns too (_compact; decoded as a piece is
        # merged in): worth it for a long tail judged now and then (the stream's full stitcher),
        # not for a short one re-read every step.
        self.compact_readings = compact_readings
        # Keep final scores with the tail and score only what may change (False: re-score the
        # whole tail every piece, as before; for measuring the difference).
        self.known_scores = known_scores
        # Detectors whose known scores saved nothing (they score most of the tail anyway: a reach
        # of days): their scores are not kept for this many more pieces (saves copying them).
        self._unkept: dict[str, int] = {}
        # The carried tail: a frame (as :func:`_by_meter` gives) or, between the pieces of a stream,
        # held with room per meter (:class:`_Room`; :attr:`tail` then makes the frame on demand).
        self._tail_df: pd.DataFrame | None = None
        self._room: _Room | None = None
        self.origin: dict[str, bool] = {}
        # Per meter with compacted hours (``store compact``): the end of its last compacted hour
        # (epoch s). While a meter's carry starts at its first reading known here (``origin``)
        # and that reading is at or after its cut, its readings are judged as the middle of its
        # data (``core.run``'s ``cut``), as ``detect`` judges them; from its first piece whose
        # tail no longer starts there on, as any tail (given by the caller: the stream, from the
        # store; the dict is kept, not copied, so stitchers given one share it).
        self.cut: dict[str, float] = {} if cut is None else cut
        self.n_before: dict[str, int] = {}
        self.since: dict[str, dict[str, float]] = {d.name: {} for d in self.detectors}
        self.emitted: dict[str, dict[str, float]] = {d.name: {} for d in self.detectors}
        self._said: set[str] = set()
        # Per meter: ids of its alerts that may still grow (as of the last piece that judged it).
        self.open: dict[str, set[str]] = {}
        # Meters to judge at the next piece even without new readings (their open alerts are not
        # known: a carry loaded from a checkpoint).
        self.stale: set[str] = set()
        # Per detector that carries its closed bins: per meter, its carry (a BinCarry, e.g.
        # macd.HourCarry); a carry is replaced, never changed in place.
        self.hours: dict[str, dict] = {d.name: {} for d in self.detectors if d.carry_cls is not None}

    @property
    def tail(self) -> pd.DataFrame | None:
        """The carried tail as a frame (as :func:`_by_meter` gives it); None: nothing carried. Held
        with room per meter (:class:`_Room`), it is made from there once and kept until the next
        piece changes it; a frame set here replaces the carry (the room is made again from it)."""
        if self._tail_df is None and self._room is not None:
            self._tail_df = self._room.frame()
        return self._tail_df

    @tail.setter
    def tail(self, df: pd.DataFrame | None) -> None:
        self._tail_df = df
        self._room = None

    def __setstate__(self, state: dict) -> None:   # (a stitcher pickled before the room: its frame)
        if "tail" in state:
            state["_tail_df"] = state.pop("tail")
        state.setdefault("_room", None)
        self.__dict__.update(state)

    def held_bytes(self) -> int:
        """Bytes the carried tail holds in memory as held (with room: its storage, room included)."""
        if self._room is not None:
            return self._room.nbytes()
        t = self._tail_df
        return 0 if t is None else sum(int(t[c].array.nbytes) for c in t.columns)

    def forget(self, meters, alerts: bool = True) -> None:
        """Drop the carry of ``meters``: their tail, post-rule restart points (``since``,
        ``emitted``), ``origin``, ``n_before`` and carried closed hours; the next piece judges each
        from its first reading in it, as a meter never seen. ``alerts``: also forget which of their
        alerts are open (False: the next feed of the meter says)."""
        ms = {str(m) for m in meters}
        if not ms:
            return
        for per in (*self.since.values(), *self.emitted.values(), *self.hours.values()):
            for m in ms:
                per.pop(m, None)
        self.stale -= ms   # a forgotten meter has no carry left to judge again (rev55)
        for m in ms:
            self.origin.pop(m, None)
            self.n_before.pop(m, None)
            if alerts:
                self.open.pop(m, None)
        if self._room is not None:
            self._room.drop(ms)
            self._tail_df = None
            if not self._room.rows():
                self._room = None
        elif self.tail is not None and len(self.tail):
            keep = ~self.tail["meter_id"].astype(str).isin(ms).to_numpy()
            self.tail = self.tail[keep].reset_index(drop=True) if keep.any() else None

    def feed(self, piece: pd.DataFrame, final: bool = False) -> Step:
        """Judge ``piece`` with the carried tail of its meters. A meter without readings in the
        piece is not judged again (unless ``final``): the core is a pure function of a meter's
        readings and carry, so it would give what it gave last time; its tail is kept as it is
        and its open alerts stay open."""
        piece = _by_meter(self._own(_plain(piece)))
        if ROOM and not final and not self.compact_readings:
            room = self._room_now()
            if room is not None:
                step = self._feed_room(room, piece)
                if step is not None:
                    return step
        return self._feed_frame(piece, final)

    def _room_now(self) -> "_Room | None":
        """The tail held with room (:class:`_Room`), made from the frame when it is not (None: no
        tail, or one the room cannot hold)."""
        if self._room is None and self._tail_df is not None and len(self._tail_df):
            df = _by_meter(self._tail_df)
            cols = set(df.columns)
            # (the channels a judged piece's cut keeps, and only those: else the frame's first)
            if any(not self._keeps(c) for c in cols) or any(c not in cols for c in CHANNEL_NAMES if self._keeps(c)):
                return None
            self._room = _Room.of(df)
            if self._room is not None:
                self._tail_df = df
        return self._room

    def _feed_room(self, room: "_Room", piece: pd.DataFrame) -> Step | None:
        """:meth:`feed` (not final) with the tail held with room: the piece's readings written
        after their meters' (none is moved), the frame of the judged meters gathered once, the
        front cut by moving each meter's start, their known scores written back where their
        readings are; the readings of the meters not judged stay where they are. The same tail,
        values and scores as :meth:`_feed_frame` gives (tests: test_stitch_room). None (nothing
        changed): a piece the room does not take as it is (a late reading, a new meter or
        column, finer stamps), judged as a frame then."""
        view = room.view()
        piece = _without_copies(piece, view)
        mid = piece["meter_id"].array
        p_lo, p_hi = _blocks_of(mid.categories, mid.codes, room.cats, None)
        if len(piece):
            if int((p_hi - p_lo).sum()) != len(piece) or not room.takes(piece):
                return None   # a meter or a column the room lacks, or finer stamps
            has = np.flatnonzero((p_hi > p_lo) & (room.end > room.start))
            if has.size and bool(np.any(room.t[room.end[has] - 1]
                                        > piece["ts"].array.as_unit(room.unit).asi8[p_lo[has]])):
                return None   # a late reading (sorted in by the frame's merge)
        self._tail_df = None
        cats = room.cats
        judged = p_hi > p_lo
        if self.stale:
            judged |= cats.isin(list(self.stale))
        calm = None
        if len(piece) and self.calm and not self.keep_scores:
            calm = self._calm(view, piece, self.stale)
        self.stale = set()
        room.append(piece, p_lo, p_hi)   # (the calm meters' readings too)
        every = bool(judged[room.listed].all())   # (the frame's feed: judged None)
        if calm is not None:
            quiet, cut = calm
            judged &= ~quiet
            room.start += np.where(quiet, cut, 0)
            room.fresh |= quiet   # their known scores are not kept (see _calm)
            room.listed = room.end > room.start
            room.trim()
        # The known scores not kept now leave the tail as the frame's feed drops them: at a piece that
        # judges a meter or cuts a calm one's tail, not at one that changes nothing (its tail kept).
        if (calm is not None or judged.any()) and any(v > 0 for v in self._unkept.values()):
            room.drop_columns([c for n, left in self._unkept.items() if left > 0
                               for c in (f"_c:{n}", KNOWN + n)])
        step = Step()
        if not judged.any():
            step.open_ids = set().union(*self.open.values())
            return step
        cat = room.gather(judged)
        res, names, cut_at, cols, starts, ends, t = self._judge(cat, False, step)
        same = res.names == names
        first_idx, keep, cut = self._cut_rows(res.frame, names, starts, ends, t,
                                              self._unsettled(res, names, cut_at), reach=res.reach if same else None)
        at = np.flatnonzero(np.where(judged, room.end - room.start, 0) > 0)   # the frame's meters
        room.start[at] += first_idx
        rows = _ranges(room.start[at], room.end[at] - room.start[at])
        known = self._cut_known(cols if self.known_scores else None, names, cut, t, keep,
                                blk=res.blockers if same else None)
        every &= calm is None
        room.put_known(rows, known, every)
        room.trim()
        room.fresh[at] = False
        if every:   # (the frame's categories: the cut frame's, a meter cut to no readings too)
            room.listed = np.zeros(len(cats), bool)
            room.listed[at] = True
        else:       # (those with readings, as the frame's merges keep them)
            room.listed = room.end > room.start
        return step

    def _feed_frame(self, piece: pd.DataFrame, final: bool) -> Step:
        """:meth:`feed` with the tail as a frame (:func:`_merge`, :meth:`_cut_tail`)."""
        tail = _by_meter(self.tail) if self.tail is not None and len(self.tail) else None
        if tail is not None and any(v > 0 for v in self._unkept.values()):
            tail = _without_unkept(tail, self._unkept)
        piece = _without_copies(piece, None if tail is None else _TailView.of(tail))
        judged = None   # per category of the tail: its meter is judged (None: every one)
        if not final and tail is not None:
            # (the meters the piece has rows of, from its codes: not its meters' names made strings,
            # made unique and looked up, ~0.15 ms a group's feed; np)
            cats = tail["meter_id"].cat.categories
            mid = piece["meter_id"].array
            lo, hi = _blocks_of(mid.categories, mid.codes, cats, None)
            judged = hi > lo
            if self.stale:
                judged |= cats.isin(list(self.stale))
            if judged.all():
                judged = None
        calm = None   # per category of the tail: a calm meter (see _calm), its new tail
        if not final and tail is not None and len(piece) and self.calm and not self.keep_scores:
            calm = self._calm(_TailView.of(tail), piece, self.stale)
        self.stale = set()
        whole_piece = piece
        if calm is not None:
            quiet, cut = calm
            judged = (judged if judged is not None else np.ones(len(quiet), bool)) & ~quiet
            # (per category of the piece, then per row by its code: not a look-up of each row's meter; np)
            mid = piece["meter_id"].array
            piece = _rows(piece, ~mid.categories.isin(tail["meter_id"].cat.categories[quiet])[mid.codes])
        step = Step()
        if not len(piece) and (tail is None or (judged is not None and not judged.any())):
            if calm is not None:
                new = _calm_tail(tail, whole_piece, None, judged, quiet, cut)
                self._put_tail(new, any(_cached(c) for c in new.columns))
            step.open_ids = set().union(*self.open.values())
            return step
        # The tail and the piece are each sorted by meter and time and a meter's new readings
        # follow its tail: merged in that order (no sort of the whole tail), else sorted.
        # (the tail as a merge side once, for both its merges; its compact columns decoded at each
        # merge, not held: a dense copy of them held through core.run raised a feed's peak memory
        # 13-30 % with compact readings and saved no CPU one could measure; rtail)
        tail_side = _Side.of(tail) if tail is not None else None
        cat = _merge(tail_side, piece, judged) if tail is not None else piece
        res, names, cut_at, cols, starts, ends, t = self._judge(cat, final, step)
        # (the run's reaches and blockers of these meters, not computed again for the cut; fs)
        same = res.names == names
        kept = self._cut_tail(res.frame, names, starts, ends, t, cols if self.known_scores else None,
                              self._unsettled(res, names, cut_at), reach=res.reach if same else None,
                              blk=res.blockers if same else None)
        scores = bool(cols and self.known_scores)
        if calm is not None:   # with the calm meters' tails, cut as judging them would have
            self._put_tail(_calm_tail(tail, whole_piece, pd.DataFrame(kept, copy=False), judged, quiet, cut), scores)
            return step
        if judged is not None and not FUSED_TAIL:   # (the reference way: a frame per pass)
            kept = _merge(tail, pd.DataFrame(kept, copy=False), ~judged)
        elif judged is not None:   # the meters not judged keep their tail as it was
            kept = _merge_sides(tail_side, _Side.of_cols(kept), ~judged)
        # (the cut tail, the meters not judged put back and the compaction on the columns, one
        # frame built at the end: not a frame per pass, each read column by column again; tail)
        self._put_tail(kept, scores)
        return step

    def _judge(self, cat: pd.DataFrame, final: bool, step: Step):
        """Judge ``cat`` (the judged meters' tails and new readings, as :func:`_merge` gives them):
        the core's run, its results into ``step`` and the carry (clean and final points, closed
        bins, open alerts). Returns the run, its meters, those judged from their compaction cut,
        the known-score columns to keep (per row of the frame), the meters' blocks and times."""
        # (a stitcher that keeps only its detectors' channels: the others one shared NaN array)
        frame = prepare(cat, shared_nan=self.columns is not None)
        names = [str(m) for m in meter_names(frame)]
        cached = self.known_scores and any(str(c).startswith(KNOWN) for c in cat.columns)
        known = self._known(cat, frame, names) if cached else None
        cut_at = self._cut_of(frame, names)
        origin = {m: self.origin.get(m, True) and m not in cut_at for m in names}
        hours = {n: {m: h[m] for m in names if m in h} for n, h in self.hours.items()}
        res = core.run(frame, self.detectors, origin=origin, flush=final,
                       since=self.since, positions=self.n_before, known=known, hours=hours, cut=cut_at or None,
                       provisional=self.provisional)
        seg, t = res.frame["_seg"].to_numpy(), res.frame["_t"].to_numpy()
        starts, ends = seg_bounds(seg)
        for j in res.judged:
            if j.det.name in self.hours:
                self._close_bins(j, names, seg, t, starts, ends, origin, cut_at)
        step.alerts = res.alerts
        step.provisional = res.provisional
        step.provisional_near = res.provisional_near
        step.provisional_open = res.provisional_open
        step.judged = set(names)
        for m in names:
            self.open.pop(m, None)
        for a in res.alerts:
            if a.id in res.open_ids:
                self.open.setdefault(a.meter_id, set()).add(a.id)
        step.open_ids = set().union(*self.open.values())
        step.unclean = set(res.unclean)
        for n in res.notices + core.skipped_notices(res.skipped) + core.failed_notices(res.failed):
            if n not in self._said:
                self._said.add(n)
                step.notices.append(n)
        # Scores that became final in this piece (each reading once per detector), long format.
        if self.keep_scores:
            parts = []
            # The stamps taken as the array they are: a tz-aware column's to_numpy() builds one
            # Timestamp object per reading of the frame, per detector and piece (tt3: 60 % of a
            # 1-min stitching test). In ns, as those objects gave it whatever the frame's unit.
            stamps = res.frame["ts"].array.as_unit("ns")
            for j in res.judged:
                done = np.array([self.emitted[j.det.name].get(m, -np.inf) for m in names])
                idx = np.flatnonzero(j.exact & j.final & (t > done[seg]))
                if len(idx):
                    parts.append(pd.DataFrame({"meter_id": res.frame["meter_id"].to_numpy()[idx],
                                               "ts": stamps.take(idx), "detector": j.det.name,
                                               "score": j.scores[idx]}))
            step.scores = pd.concat(parts, ignore_index=True) if parts else None
        for j in res.judged:
            name = j.det.name
            # As Python floats (one conversion per array, not a NumPy scalar per meter and detector).
            emitted = self.emitted[name]
            for m, ft in zip(names, np.asarray(res.final_t[name], float).tolist()):
                if math.isfinite(ft):
                    emitted[m] = max(emitted.get(m, -np.inf), ft)
            self.since[name].update(zip(names, np.asarray(res.clean[name], float).tolist()))
        # Scores final now (exact and final) or before are kept with the tail for the next piece.
        cols = {}
        for j in res.judged:
            name = j.det.name
            if known is not None and name in known and j.share > core.FRESH_WHOLE:
                self._unkept[name] = UNKEPT_PIECES
            if self._unkept.get(name, 0) > 0:
                self._unkept[name] -= 1
                continue
            ok = j.exact & j.final
            if known is not None and name in known:
                ok = ok | known[name][1]
            cols[f"_c:{name}"] = j.scores
            cols[KNOWN + name] = ok
        return res, names, cut_at, cols, starts, ends, t

    def _cut_of(self, frame: pd.DataFrame, names: list[str]) -> dict[str, float]:
        """Per meter of ``frame`` (prepared; ``names`` its meters) judged from its compaction
        cut: in :attr:`cut`, its carry starting at its first reading known here, and the frame's
        first reading of it at or after the cut (a tail checkpointed before the compaction still
        holds the meter's readings from its start: judged as such)."""
        ks = [k for k, m in enumerate(names) if m in self.cut and self.origin.get(m, True)]
        if not ks:
            return {}
        starts, _ = seg_bounds(frame["_seg"].to_numpy())
        t = frame["_t"].to_numpy()
        return {names[k]: float(self.cut[names[k]]) for k in ks if t[starts[k]] >= self.cut[names[k]]}

    def _unsettled(self, res: core.Result, names: list[str], cut_at: dict) -> np.ndarray | None:
        """Per meter of ``names``: judged from its compaction cut (``cut_at``) and some detector of
        finite reach may still form an alert before its earliest start there (``Result.from_t``;
        a hold not back to normal yet, its reach after the cut not reached) from where its
        post-rules restart next (its clean point). Such a meter keeps its tail from its first raw
        reading, so the next piece is judged from the cut again: judged as any tail, an alert
        across the cut would be formed from that clean point on. None: no such meter."""
        if not cut_at:
            return None
        out = np.zeros(len(names), bool)
        at = np.isin(np.asarray(names, dtype=object), list(cut_at))
        reach = core.reaches(self.detectors, names)
        for j in res.judged:
            f, c = res.from_t.get(j.det.name), res.clean.get(j.det.name)
            if f is None or c is None:
                continue
            finite = np.isfinite(np.asarray(reach[j.det.name].back_s, float))
            out |= at & finite & ~np.asarray(j.skipped, bool) & ~(np.asarray(f, float) <= np.asarray(c, float))
        return out if out.any() else None

    def _put_tail(self, tail: pd.DataFrame | dict, scores: bool) -> None:
        """``tail`` (a frame as :func:`_by_meter` gives, or its columns as a dict) as the carried
        tail (its known scores, with ``scores``, and readings, with :attr:`compact_readings`, in
        compact form)."""
        if scores or self.compact_readings:
            tail = _compact_cols(tail if isinstance(tail, dict) else {c: tail[c].array for c in tail.columns},
                                 self.compact_readings)
        if isinstance(tail, dict):
            # (its columns' dict is not kept on the frame for the next merge: that saved ~1 % of
            # the fast tier's feeds, 0.6-0.8 ms of ~60, for a second copy of the tail's state
            # that any change to the frame would leave stale; rtail)
            tail = pd.DataFrame(tail, copy=False)
        tail.__dict__["_ww_by_meter"] = True
        self.tail = tail

    def _calm(self, tail: "_TailView", piece: pd.DataFrame, stale: set[str]):
        """The meters of ``piece`` that need not be judged: (per category of ``tail``: calm, and
        for a calm meter how many of its readings, its tail's then the piece's, its tail drops
        from the front) or None (none calm).

        A meter is calm when nothing of it is open (no alert that may grow, every detector's
        clean point at its last final reading), its readings follow its tail (none late), it is
        not ``stale``, every detector has its state, and every detector finds the readings its
        post-rules would use (from its clean point to its new last final reading) calm on the
        tail and the piece together (:meth:`Detector.calm_meters`: no score there can reach the
        threshold; the one known score among them, at the clean point, is such a score too).
        Judged, such a meter would give no alert, no anomalous reading to carry and no notice;
        what judging changes is its carry, which is worked out here with the same functions the
        judging uses: the last final reading per detector (the core's reach ahead,
        ``core._reach_rows``), which becomes both its clean point and its final point, and the
        readings its tail keeps from there (:meth:`_first_kept`). Its known scores are not kept
        (a later piece that judges it scores its tail afresh, as when they were never kept)."""
        if any(type(d).calm_meters is Detector.calm_meters for d in self.detectors):
            return None   # a detector that cannot say: every meter is judged
        cats = tail.cats
        t_lo, t_hi = tail.lo, tail.hi
        p_lo, p_hi = _blocks(piece, cats, None)
        unit = min(tail.unit, piece["ts"].array.unit, key=_UNITS.index)
        ta, tb = tail.stamps(unit), piece["ts"].array.as_unit(unit).asi8
        cand = (p_hi > p_lo) & (t_hi > t_lo)
        idx = np.flatnonzero(cand)
        cand[idx] = ta[t_hi[idx] - 1] < tb[p_lo[idx]]   # none late
        for i in np.flatnonzero(cand):
            m = str(cats[i])
            if m in stale or self.open.get(m) or (m in self.cut and self.origin.get(m, True)):
                cand[i] = False   # (a meter judged from its compaction cut: judged)
                continue
            for d in self.detectors:
                c, e = self.since[d.name].get(m), self.emitted[d.name].get(m)
                state = getattr(d, "state_", {}).get(m)
                if c is None or c != e or not math.isfinite(c) or state is None or state.get("lacks"):
                    cand[i] = False
                    break
        ci = np.flatnonzero(cand)
        if not len(ci):
            return None
        # The candidates' readings as judging would merge them (tail, then piece), their times
        # as prepare has them.
        n_t, n_p = t_hi[ci] - t_lo[ci], p_hi[ci] - p_lo[ci]
        rows = _ranges(np.column_stack([t_lo[ci], len(ta) + p_lo[ci]]).ravel(), np.column_stack([n_t, n_p]).ravel())
        t = np.concatenate([ta, tb])[rows] / _PER_SECOND[unit]
        lens = n_t + n_p
        ends = np.cumsum(lens)
        starts = ends - lens
        seg = np.repeat(np.arange(len(ci)), lens)
        dt = np.empty(len(t))
        dt[0] = np.nan
        np.subtract(t[1:], t[:-1], out=dt[1:])
        dt[starts] = np.nan
        names = [str(m) for m in cats[ci]]
        # Their last final readings, as the core finds them (origin as judging passes it; no flush).
        st = core.SegTimes(t, seg, starts, ends)
        reach = core.reaches(self.detectors, names)
        origin = np.array([self.origin.get(m, True) for m in names], bool)
        no_flush = np.zeros(len(names), bool)
        ok = np.ones(len(names), bool)
        final_t = {}
        for d in self.detectors:
            _, fin = core._reach_rows(t, seg, starts, ends, reach[d.name], origin, no_flush, st)
            ft = core._seg_time(len(names), seg, t, np.flatnonzero(fin), last=True)
            since = np.array([self.since[d.name][m] for m in names], float)
            ok &= np.isfinite(ft) & (ft >= since)
            # The readings its post-rules would use: from its clean point to its last final one.
            ok &= np.asarray(d.calm_meters(names, seg, starts, t, dt, since, np.where(ok, ft, since), st=st), bool)
            final_t[d.name] = ft
        if not ok.any():
            return None
        mine = [m for m, q in zip(names, ok) if q]
        for d in self.detectors:
            for m, v in zip(mine, final_t[d.name][ok].tolist()):
                self.since[d.name][m] = v
                self.emitted[d.name][m] = v
        first_idx, _, _ = self._first_kept(names, st, t, reach)
        self._moved(mine, first_idx[ok])
        quiet = np.zeros(len(cats), bool)
        quiet[ci[ok]] = True
        cut = np.zeros(len(cats), np.int64)
        cut[ci[ok]] = first_idx[ok]
        self.calm_fed += int(n_p[ok].sum())
        return quiet, cut

    def _own(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with only the channels the tail keeps (:attr:`columns`; the keys and the tail's
        own score columns always)."""
        if self.columns is None:
            return df
        cols = [c for c in df.columns if self._keeps(c)]
        if len(cols) == len(df.columns):
            return df
        # (the same arrays in a new frame: ``df[cols]`` copies every column it keeps, ~0.35-0.55 ms
        # for a 200-row piece at every group's feed; np)
        out = pd.DataFrame({c: df[c].array for c in cols}, copy=False)
        if df.__dict__.get("_ww_by_meter"):   # the same rows in the same order
            out.__dict__["_ww_by_meter"] = True
        return out

    def _keeps(self, c) -> bool:
        return self.columns is None or c in ("meter_id", "ts") or c in self.columns or _cached(c)

    def flush(self) -> Step:
        """No readings will follow: every pending reading becomes final."""
        step = self.feed(pd.DataFrame({"meter_id": pd.Series([], dtype="string"),
                                       "ts": pd.Series([], dtype="datetime64[us, UTC]")}), final=True)
        return step

    def carry(self) -> pd.DataFrame | None:
        """The tail as checkpointed: the readings (as plain float64 columns), without the known scores."""
        if self.tail is None:
            return None
        return dense_columns(self.tail.drop(columns=[c for c in self.tail.columns if _cached(c)]))

    def hour_carry(self) -> pd.DataFrame | None:
        """The carried closed bins as checkpointed: one row per (detector, meter, bin) with the
        bin's start ``hour`` (epoch s; an hour for baseline_macd) and its value of each series the
        detector carries (a column per series name, NaN: none), and per (detector, meter) the
        bin width ``step``, the first bin not carried ``c1`` and whether the first carried bin is
        the meter's first (``origin``). None: nothing carried."""
        parts = []
        for name, per in self.hours.items():
            for m, c in per.items():
                n = len(c)
                parts.append(pd.DataFrame({"detector": name, "meter_id": m, "hour": c.b0 + c.step * np.arange(n),
                                           **{k: c.series[k] for k in c.names}, "step": float(c.step),
                                           "c1": c.c1, "origin": bool(c.origin)}))
        return pd.concat(parts, ignore_index=True) if parts else None

    def load_hour_carry(self, df: pd.DataFrame | None) -> None:
        """Take the carried closed bins back from :meth:`hour_carry`'s frame (a frame without
        ``step``, checkpointed when only hours were carried: 3,600 s)."""
        cls = {d.name: d.carry_cls for d in self.detectors if d.carry_cls is not None}
        self.hours = {n: {} for n in self.hours}
        if df is None or not len(df):
            return
        df = df.sort_values(["detector", "meter_id", "hour"], kind="stable")
        for (name, m), g in df.groupby(["detector", "meter_id"], sort=False):
            if name in self.hours:
                h = g["hour"].to_numpy(float)
                step = float(g["step"].iat[0]) if "step" in g.columns else 3600.0
                self.hours[name][str(m)] = cls[name](float(h[0]), float(g["c1"].iat[0]), bool(g["origin"].iat[0]), step,
                                                     {k: g[k].to_numpy(float).copy() for k in cls[name].names})

    def _close_bins(self, j: core.Judged, names: list[str], seg, t, starts, ends, origin: dict,
                    from_cut=()) -> None:
        """Carry on the closed bins of ``j``'s meters (a detector with a ``carry_cls``): every
        bin whose aggregates are final (the bin ended before the meter's last final reading)
        and exact in raw readings (from the bin of the first reading whose reach in raw
        readings the frame holds; every bin on a meter the frame holds from its start, or from
        its compaction cut, ``from_cut``: its bins are those ``detect`` computes there), after
        the bins already carried; a gap between them (not expected) starts the carry afresh."""
        ctx, sub = j.ctx, None
        if isinstance(ctx, core._Sub):
            ctx, sub = ctx.ctx, ctx.frame
        got = j.det.closed_bins(j.input if sub is None else sub, ctx)
        if got is None:
            return
        cls = j.det.carry_cls
        lens = ends - starts
        ex = j.exact_raw if j.exact_raw is not None else np.ones(len(t), bool)
        within = np.arange(len(t)) - starts[seg]
        first_ex = np.minimum.reduceat(np.where(ex, within, lens[seg]), starts) if len(t) else lens
        n_final = np.add.reduceat(j.final.astype(np.int64), starts) if len(t) else lens
        per = self.hours[j.det.name]
        for k, name in enumerate(names):
            b = got.get(name)
            if b is None or j.skipped[k] or first_ex[k] >= lens[k] or n_final[k] == 0:
                continue
            t0, step, series = b
            c1 = np.floor(t[starts[k] + n_final[k] - 1] / step) * step
            h_e = t0 if origin.get(name, True) or name in from_cut else \
                np.floor(t[starts[k] + first_ex[k]] / step) * step
            old = per.get(name)
            if old is not None and old.step == step and h_e <= old.c1:
                h0, org = old.b0, old.origin
                c1 = max(c1, old.c1)
            else:
                h0, org = h_e, bool(origin.get(name, True))
            if c1 <= h0:
                continue
            lo, hi = int(np.rint((h0 - t0) / step)), int(np.rint((c1 - t0) / step))
            per[name] = cls(float(h0), float(c1), org, float(step), {n: series[n][lo:hi].copy() for n in cls.names})

    def _known(self, cat: pd.DataFrame, frame: pd.DataFrame, names: list[str]) -> dict:
        """Per detector, (score, known) per row of ``frame`` (``cat`` prepared, in the same order)
        from the tail's columns: a score is known where its flag is set (not on a row of the
        piece) and the row is not after the last reading final for that meter."""
        seg, t = frame["_seg"].to_numpy(), frame["_t"].to_numpy()
        out = {}
        for d in self.detectors:
            col, flag = f"_c:{d.name}", KNOWN + d.name
            if col not in cat.columns or flag not in cat.columns:
                continue
            done = np.array([self.emitted[d.name].get(m, -np.inf) for m in names], float)
            ok = cat[flag].to_numpy(bool) & (t <= done[seg])
            out[d.name] = (cat[col].to_numpy(float), ok)
        return out

    def _cut_bins(self, d: Detector, names: list[str], ref: np.ndarray, full, raw):
        """For a detector whose closed bins are carried: per meter whose carry holds the bins its
        own reach needs before ``ref`` and before the first bin not carried (the carry starts at the
        meter's first bin, or that reach before both), the raw readings are kept only for its reach
        in raw readings (``raw``) before the earlier of the two, the rest as before (``full``); its
        carry keeps the bins from its own reach before that point. Returns (reach, ref, raw) per
        meter, ``raw``: its own reach is the one in raw readings (``carried_reach``)."""
        per = self.hours[d.name]
        own = np.asarray(d.reach(names).back_s, float)
        back_s, back_n = np.array(full.back_s, float), np.array(full.back_n, np.int64)
        ref = ref.copy()
        in_raw = np.zeros(len(names), bool)
        for k, m in enumerate(names):
            c = per.get(m)
            if c is None or ref[k] == -np.inf:
                continue
            point = min(ref[k], c.c1)
            if not np.isfinite(own[k]):
                continue
            cut = np.floor((point - own[k]) / c.step) * c.step - c.step
            if cut > c.b0:   # bins no reading to come can reach
                c = per[m] = c.since(cut)
            if c.origin or c.b0 + own[k] <= point:
                ref[k] = point
                back_s[k], back_n[k] = raw.back_s[k], raw.back_n[k]
                in_raw[k] = True
        return type(full)(back_s, back_n, full.ahead_s, full.ahead_n), ref, in_raw

    def _cut_tail(self, frame: pd.DataFrame, names: list[str], starts, ends, t, cols: dict | None = None,
                  whole: np.ndarray | None = None, reach: dict | None = None, blk: dict | None = None) -> dict:
        """Keep, per meter, the readings the pending ones reach back to (all meters at once);
        ``whole``: per meter, keep all its readings (:meth:`_unsettled`). Returns the kept rows'
        columns (a dict: the caller puts the meters not judged back and builds the frame).
        ``reach``, ``blk``: :func:`core.reaches` and :func:`core.blockers` of the detectors on
        ``names``, when known (the core's run found them: ``Result.reach``, ``Result.blockers``)."""
        first_idx, keep, cut = self._cut_rows(frame, names, starts, ends, t, whole, reach)
        drop = {*AUX, "_n"}
        data = {c: frame[c].array[keep] for c in frame.columns if c not in drop and self._keeps(c)}
        data.update(self._cut_known(cols, names, cut, t, keep, blk))
        return data

    def _cut_rows(self, frame: pd.DataFrame, names: list[str], starts, ends, t, whole: np.ndarray | None = None,
                  reach: dict | None = None):
        """:meth:`_cut_tail`'s cut: per meter the first reading kept (the meter's start moved there,
        :meth:`_moved`), which rows of the frame are kept, and what :meth:`_cut_known` needs of it
        (the frame's times per meter, each detector's reference point and own reach)."""
        seg = frame["_seg"].to_numpy()
        st = core.SegTimes(t, seg, starts, ends)
        first_idx, refs, owns = self._first_kept(names, st, t, reach)
        if whole is not None:
            first_idx = np.where(whole, 0, first_idx)
        keep = st.within() >= first_idx[seg]
        self._moved(names, first_idx)
        return first_idx, keep, (st, refs, owns)

    def _cut_known(self, cols: dict | None, names: list[str], cut: tuple, t, keep: np.ndarray,
                   blk: dict | None = None) -> dict:
        """The known-score columns of the kept rows (``keep``), as :meth:`_cut_tail` keeps them
        (``cut``: :meth:`_cut_rows`'s)."""
        data = {}
        if cols:
            st, refs, owns = cut
            seg = st.seg
            own, need = self._needed(names, st, t, refs, owns, blk)
            sk, wk = seg[keep], st.within()[keep]
            for d in self.detectors:
                if KNOWN + d.name not in cols:
                    continue
                held, mine = wk >= need[d.name][sk], wk >= own[d.name][sk]
                # Not needed: known and NaN; where only the detectors it blanks read it: its
                # class (see _needed).
                data[KNOWN + d.name] = cols[KNOWN + d.name][keep] | ~held
                v = cols[f"_c:{d.name}"][keep]
                out = np.where(mine, v, np.nan)
                cls = np.flatnonzero(held & ~mine)
                out[cls] = _as_class(v[cls], float(d.config.post.threshold), d.config.post.strong)
                data[f"_c:{d.name}"] = out
        return data

    def _moved(self, names: list[str], first_idx: np.ndarray) -> None:
        """Per meter, ``first_idx`` readings dropped from the front of its tail: where it starts."""
        for k in np.flatnonzero(first_idx > 0):
            m = names[k]
            self.origin[m] = False
            self.n_before[m] = self.n_before.get(m, 0) + int(first_idx[k])
        for k in np.flatnonzero(first_idx == 0):
            self.origin.setdefault(names[k], True)

    def _first_kept(self, names: list[str], st: core.SegTimes, t: np.ndarray,
                    reach: dict | None = None) -> tuple[np.ndarray, dict, dict]:
        """Per meter of a frame (``st``, ``t``: its times), the first of its readings the tail keeps
        (from its clean points and final points as :attr:`since` and :attr:`emitted` hold them
        now), and per detector its reference point and own reach (for :meth:`_needed`).
        ``reach``: :func:`core.reaches` of the detectors on ``names``, when computed already."""
        reach = reach if reach is not None else core.reaches(self.detectors, names)
        ks = st.ks
        lens = (st.ends - st.starts)
        first_idx = lens.copy()
        raw = core.reaches(self.detectors, names, set(self.hours)) if self.hours else None
        refs, owns = {}, {}
        for d in self.detectors:
            r = reach[d.name]
            since = np.array([self.since[d.name].get(m, -np.inf) for m in names], float)
            done = np.array([self.emitted[d.name].get(m, -np.inf) for m in names], float)
            pend = st.search(ks, core.SegTimes.to_us(done), "right")  # first reading not final yet
            t_pend = np.where(pend < lens, t[st.starts + np.minimum(pend, lens - 1)], np.inf)
            ref = np.minimum(since, t_pend)
            # ref = +inf: nothing pending, nothing open; -inf: its post-rules still start at the
            # meter's first reading (keep everything).
            own = d.reach(names)
            if d.name in self.hours:
                r, ref, in_raw = self._cut_bins(d, names, ref, r, raw[d.name])
                cr = d.carried_reach(names)
                own = type(own)(np.where(in_raw, cr.back_s, own.back_s), np.where(in_raw, cr.back_n, own.back_n),
                                own.ahead_s, own.ahead_n)
            refs[d.name], owns[d.name] = ref, own
            back = np.asarray(r.back_s, float)
            # Keep the back_n readings before the reach and at least one (the core calls a
            # reading exact when the frame starts at or before its reach).
            ok = np.isfinite(back) & np.isfinite(ref)
            j = np.where(ok, st.search(ks, core.SegTimes.to_us(np.where(ok, ref - back, 0.0)), "left"), 0)
            cand = np.maximum(0, j - np.maximum(np.asarray(r.back_n).astype(np.int64), 1))
            first_idx = np.where(ref == -np.inf, 0, np.where(np.isfinite(ref), np.minimum(first_idx, cand), first_idx))
        return first_idx, refs, owns

    def _needed(self, names: list[str], st: core.SegTimes, t: np.ndarray, refs: dict,
                owns: dict, blk: dict | None = None) -> tuple[dict, dict]:
        """Per detector, per meter: the first of its rows in the frame whose score a later piece
        reads (the meter's reading count: none).

        A detector's post-rules read its scores from its clean point or first pending reading
        (``refs``, as the tail is cut) on. A detector it blanks (:func:`core.blockers`) reads
        them around its own input: from its own needed scores' own reach back (``owns``: in raw
        readings where its closed bins are carried; one reading more, as :func:`core.run` scores
        from) less the blanking horizon. In blocking order backwards, so that a blocker's needs
        include those of everything it blanks, whatever the chain. Its scores before that point
        change no score the others need (the core's reach: a score is exact with only that much
        of its blockers' findings in the frame), so they are held as known and NaN: the detector
        does not score them again, and the tail holds no value for them. A meter ``d`` is idle
        on asks nothing of its blockers; ref ``-inf``: every row is needed, ``+inf``: none.

        What the blanked detectors read of a score is only its class: the post-rules' groups and
        the explained readings depend on whether it is NaN and whether it reaches the threshold
        (or the score one reading alone alerts at, ``PostRule.single_s``), not on its value (:func:`postrules.group`; a detector whose alerts explain others has no
        hold); so on the rows only they read, the value is held as its class (:func:`_as_class`).

        Returns (own, needed): per detector, from which row its own post-rules read, and from
        which row anything does. ``blk``: :func:`core.blockers` of the detectors on ``names``,
        when known."""
        ks, lens = st.ks, st.lens
        blk = core.blockers(self.detectors, names) if blk is None else blk
        first = {}
        for d in self.detectors:   # first needed row per meter, from its own post-rules
            ref = refs[d.name]
            j = st.search(ks, core.SegTimes.to_us(np.where(np.isfinite(ref), ref, 0.0)), "left")
            first[d.name] = np.where(ref == -np.inf, 0, np.where(ref == np.inf, lens, j))
        mine = dict(first)
        for d in reversed(self.detectors):
            nd = first[d.name]
            if not blk[d.name]:
                continue
            asks = (nd < lens) & ~core.idle_on(d, names)
            own = owns[d.name]
            back = np.asarray(own.back_s, float)
            t_need = t[st.starts + np.minimum(nd, np.maximum(lens - 1, 0))]
            use = asks & np.isfinite(back)
            j = np.where(use, st.search(ks, core.SegTimes.to_us(np.where(use, t_need - back, 0.0)), "left"), 0)
            lo = np.maximum(0, j - np.asarray(own.back_n).astype(np.int64) - 1)
            t_in = t[st.starts + np.minimum(lo, np.maximum(lens - 1, 0))]
            for b, h in blk[d.name]:
                h = np.asarray(h, float)
                ok = asks & np.isfinite(h)
                jb = np.where(ok, st.search(ks, core.SegTimes.to_us(np.where(ok, t_in - h, 0.0)), "left"), 0)
                first[b] = np.where(asks, np.minimum(first[b], jb), first[b])
        return mine, first


def _as_class(v: np.ndarray, threshold: float, strong: float | None = None) -> np.ndarray:
    """Scores as their class for the post-rules' groups and what a detector explains: NaN, below
    ``threshold`` (the float just under it) or at or above it (the threshold); with ``strong``
    (:attr:`PostRule.strong`: one such reading may alert alone), at or above that (``strong``)."""
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(v), np.nan, np.where(v >= threshold, threshold, np.nextafter(threshold, -np.inf)))
        return out if strong is None else np.where(v >= strong, strong, out)


def _compact(v: np.ndarray):
    """A float64 column of the tail (known scores, or readings) in the smallest of these forms that
    gives back every value bit for bit (NaN as NaN; 0.0 is not -0.0): a sparse array of the values
    other than its commonest (NaN where nothing reads the scores or a phase is missing, a rule's
    normal level, the class under the threshold), int8 or int16 codes of its distinct values with
    the values (a rule's few levels, scores held as their class, a register's resolution), float32
    where every value is one; else as it is. Read back with ``to_numpy(float)``.

    Every step of the stream rebuilds the tail, so the usual case is cheap: a column mostly one
    value (its commonest found among a few sampled rows) is made sparse without counting its
    distinct values."""
    v = np.asarray(v, float)
    n = len(v)
    if n == 0:
        return v
    nan = np.isnan(v)
    fill, n_fill = np.nan, int(np.count_nonzero(nan))
    for c in np.unique(v[np.linspace(0, n - 1, 5).astype(np.int64)]):
        if not np.isnan(c):
            k = int(np.count_nonzero(v == c))
            if k > n_fill:
                fill, n_fill = float(c), k
    if fill == 0.0 and np.count_nonzero((v == 0.0) & (np.signbit(v) != np.signbit(fill))):
        fill, n_fill = np.nan, int(np.count_nonzero(nan))   # 0.0 and -0.0 both: not one fill value
    held = v[~nan & (v != fill)] if not np.isnan(fill) else v[~nan]
    small = _same(held.astype(np.float32).astype(float), held) and (
        np.isnan(fill) or _same(np.float32(fill).astype(float).reshape(1), np.array([fill])))
    sparse = (n - n_fill) * (8 if small else 12)
    if sparse < n:   # smaller than one byte a row: nothing else can be
        return pd.arrays.SparseArray(v.astype(np.float32) if small else v, fill_value=fill)
    fin = ~nan
    vals = v[fin]
    f32 = _same(vals.astype(np.float32).astype(float), vals)
    best, size = (v.astype(np.float32), 4 * n) if f32 else (v, 8 * n)
    # A look at a sample of ~2,000 first: a column whose sample hardly repeats a value (more
    # distinct values than int16 codes hold, likely) is not factorised.
    sample = vals[:: max(1, len(vals) // 2048)]
    if len(pd.unique(sample)) <= 0.9 * len(sample):
        codes, uniq = pd.factorize(vals)
        uniq = np.asarray(uniq, float)
        if len(uniq) <= np.iinfo(np.int16).max and _same(uniq[codes], vals):
            ct = np.int8 if len(uniq) <= np.iinfo(np.int8).max else np.int16
            coded = n * np.dtype(ct).itemsize + 8 * len(uniq)   # the codes and the values
            if coded < size:
                full = np.full(n, -1, ct)
                full[fin] = codes
                best = pd.Categorical.from_codes(full, categories=pd.Index(uniq))
                size = coded
    if sparse < size:
        best = pd.arrays.SparseArray(v.astype(np.float32) if small else v, fill_value=fill)
    return best


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Finite float64 arrays equal bit for bit (0.0 is not -0.0)."""
    return bool(np.array_equal(np.asarray(a, float).view(np.int64), np.asarray(b, float).view(np.int64)))


def _compact_flags(f: np.ndarray):
    """Known-score flags (mostly true): a sparse array of the false ones where that is smaller."""
    f = np.asarray(f, bool)
    if (len(f) - int(np.count_nonzero(f))) * 5 < 0.75 * len(f):
        return pd.arrays.SparseArray(f, fill_value=True)
    return f


def _compact_columns(df: pd.DataFrame, readings: bool = False) -> pd.DataFrame:
    """``df`` with its known-score columns (and with ``readings``, its float64 readings) in compact
    exact form (:func:`_compact`), the others shared."""
    return pd.DataFrame(_compact_cols({c: df[c].array for c in df.columns}, readings), copy=False)


def _compact_cols(cols: dict, readings: bool = False) -> dict:
    """:func:`_compact_columns` of a frame's columns given as arrays (a dict)."""
    out = {}
    for c, v in cols.items():
        if isinstance(v, (np.ndarray, pd.arrays.NumpyExtensionArray)):
            if str(c).startswith("_c:"):
                v = _compact(np.asarray(v, float))
            elif str(c).startswith(KNOWN):
                v = _compact_flags(np.asarray(v, bool))
            elif readings and c not in ("meter_id", "ts") and np.asarray(v).dtype == np.float64:
                v = _compact(np.asarray(v, float))
        out[c] = v
    return out


def _is_compact(col: pd.Series) -> bool:
    """A column in one of :func:`_compact`'s forms (or compact flags)."""
    d = col.dtype
    if isinstance(d, np.dtype):   # (fast) a plain numpy column: float32 is the one compact form (no .array)
        return d == np.float32
    v = col.array
    return isinstance(v, pd.arrays.SparseArray) or (isinstance(v, pd.Categorical) and v.categories.dtype == np.float64)


def _values(col: pd.Series) -> np.ndarray:
    """A column's values as numpy; a compact one (:func:`_compact`) as float64, flags as bool."""
    if not _is_compact(col):
        return col.to_numpy()
    if str(col.name).startswith(KNOWN):
        x = col.to_numpy()
        return np.where(pd.isna(x), False, x).astype(bool)
    return col.to_numpy(float)


def dense_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its compact columns (:func:`_compact`: scores and readings) as plain float64 and
    flags as bool (copies of those columns), e.g. to put tails with different compact forms
    together or to checkpoint one."""
    out = df.copy(deep=False)
    for c in df.columns:
        if c not in ("meter_id", "ts") and _is_compact(df[c]):
            out[c] = _values(df[c])
    return out


def _cached(col) -> bool:
    """A column of known scores or their flags (kept in memory, not checkpointed)."""
    return str(col).startswith(("_c:", KNOWN))


def _by_meter(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` sorted by meter then time (stable), ``meter_id`` a Categorical with sorted categories,
    a RangeIndex; as it is when it already is (the stitcher's own tail is marked so)."""
    if df.__dict__.get("_ww_by_meter"):
        return df
    mid = df["meter_id"]
    if isinstance(mid.dtype, pd.CategoricalDtype) and mid.cat.categories.is_monotonic_increasing \
            and mid.cat.categories.dtype == object:
        codes, cats = mid.array.codes, mid.cat.categories
    else:
        codes, uniq = pd.factorize(mid.astype(str).to_numpy(object), sort=True)
        cats = pd.Index(np.asarray(uniq, dtype=object), dtype=object)
    ts = _utc(df["ts"])
    t = ts.array.asi8
    dc = np.diff(codes)
    ok = len(codes) < 2 or bool(np.all((dc > 0) | ((dc == 0) & (np.diff(t) >= 0))))
    order = None if ok else np.lexsort((t, codes))
    cols = {}
    for c in df.columns:
        if c == "meter_id":
            v = pd.Categorical.from_codes(codes if order is None else codes[order], categories=cats)
        elif c == "ts":
            v = ts.array if order is None else ts.array.take(order)
        else:
            v = df[c].array if order is None else df[c].array.take(order)
        cols[c] = v
    out = pd.DataFrame(cols, copy=False)
    out.__dict__["_ww_by_meter"] = True
    return out


def _utc(col: pd.Series) -> pd.Series:
    """``pd.to_datetime(col, utc=True)``, and a column already in that form (what the stitcher's
    pieces and tail carry) as it is: to_datetime copies it (~1 ms a 1,000 rows), at every piece."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) and col.dtype.tz is datetime.timezone.utc:
        return col
    return pd.to_datetime(col, utc=True)


_UNITS = ("ns", "us", "ms", "s")  # finest first


class _Side:
    """One side of a merge: a frame as :func:`_by_meter` gives it, or its columns as a dict (a tail
    being built, not made a DataFrame yet: :meth:`Stitcher._cut_tail`). Its meters' categories and
    codes, its stamps, its column names, and a column's values as :func:`_values` gives them."""

    __slots__ = ("cats", "codes", "ts", "columns", "n", "values")

    def __init__(self, cats, codes, ts, columns, n, values):
        self.cats, self.codes, self.ts, self.columns, self.n = cats, codes, ts, columns, n
        self.values = values   # column name -> its values as :func:`_values` gives them (decoded anew)

    @classmethod
    def of(cls, df: pd.DataFrame) -> "_Side":
        mid = df["meter_id"].array
        return cls(mid.categories, mid.codes, df["ts"].array, list(df.columns), len(df), lambda c: _values(df[c]))

    @classmethod
    def of_cols(cls, cols: dict) -> "_Side":
        mid = cols["meter_id"]
        return cls(mid.categories, mid.codes, cols["ts"], list(cols), len(mid), lambda c: _col_values(cols[c], c))


def _col_values(v, name) -> np.ndarray:
    """:func:`_values` of a column given as its array (a plain numpy one as it is, the rest as a
    column of a frame would give it)."""
    if isinstance(v, pd.arrays.NumpyExtensionArray):
        v = v.to_numpy()
    if isinstance(v, np.ndarray) and v.dtype != np.float32:
        return v
    return _values(pd.Series(v, name=name, copy=False))



class _TailView:
    """Where a tail's readings are: per meter of ``cats`` its rows [``lo``, ``hi``) of the stamps
    ``t`` (int64 in ``unit``); a frame's (:meth:`of`) or a :class:`_Room`'s (rows between blocks
    are not its readings). What :func:`_without_copies` and :meth:`Stitcher._calm` read of a tail."""

    __slots__ = ("cats", "lo", "hi", "t", "unit")

    def __init__(self, cats: pd.Index, lo: np.ndarray, hi: np.ndarray, t: np.ndarray, unit: str):
        self.cats, self.lo, self.hi, self.t, self.unit = cats, lo, hi, t, unit

    @classmethod
    def of(cls, df: pd.DataFrame) -> "_TailView":
        """Of a frame as :func:`_by_meter` gives it."""
        mid = df["meter_id"].array
        lo, hi = _blocks_of(mid.categories, mid.codes, mid.categories, None)
        return cls(mid.categories, lo, hi, df["ts"].array.asi8, df["ts"].array.unit)

    def rows(self) -> int:
        return int((self.hi - self.lo).sum())

    def blocks(self, cats: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """Per meter of ``cats``: its rows [lo, hi) (empty: one the tail lacks), as :func:`_blocks`."""
        if cats is self.cats or cats.equals(self.cats):
            return self.lo, self.hi
        at = self.cats.get_indexer(cats)
        ok = at >= 0
        lo, hi = np.zeros(len(cats), np.int64), np.zeros(len(cats), np.int64)
        lo[ok], hi[ok] = self.lo[at[ok]], self.hi[at[ok]]
        return lo, hi

    def stamps(self, unit: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The stamps (of ``rows``; None: all) as int64 in ``unit`` (not coarser than the tail's)."""
        t = self.t if rows is None else self.t[rows]
        return t if unit == self.unit else t.view(f"M8[{self.unit}]").astype(f"M8[{unit}]").view(np.int64)


def _fill(c) -> bool | float:
    """What a row lacking column ``c`` holds: False for known-score flags, else NaN (as :func:`_merge`)."""
    return False if str(c).startswith(KNOWN) else np.nan


class _Room:
    """A stitcher's tail held with room per meter (issue 16): per column one array, in which each
    meter of ``cats`` (sorted, as the tail's categories) has a block [``base``, ``base + cap``) whose
    rows [``start``, ``end``) are its readings, in time order; the rows after ``end`` are room for
    the next pieces' readings. A piece's readings are written after their meters' (:meth:`append`),
    the front is cut by moving ``start``; the arrays are made again (every block's readings to its
    base, with room again) only when a piece brings a meter more readings than its block has room
    for (:meth:`_grow`). The known scores (``_c:``, ``_k:``) are held dense (float64, bool), per meter
    ``fresh``: none known (its rows read as NaN and False: a calm meter's, :meth:`Stitcher._calm`).
    Readings are float64 channels (a tail with other columns is held as a frame)."""

    __slots__ = ("cats", "unit", "start", "end", "base", "cap", "t", "cols", "fresh", "listed", "grown")

    def __init__(self, cats: pd.Index, unit: str, lo: np.ndarray, hi: np.ndarray, t: np.ndarray, cols: dict):
        self.cats, self.unit = cats, unit
        self.start, self.end = np.asarray(lo, np.int64).copy(), np.asarray(hi, np.int64).copy()
        self.base, self.cap = self.start.copy(), self.end - self.start
        self.t, self.cols = t, cols
        self.fresh = np.zeros(len(cats), bool)
        # Per meter: among the frame's categories (those with readings, and those forgotten since the
        # frame was last made: :meth:`Stitcher.forget` keeps them); a piece that judges every one of
        # them drops the known-score columns its cut does not keep, as the frame's cut tail lacks them.
        self.listed = np.ones(len(cats), bool)
        self.grown = 0   # times the arrays were made again (for measuring)
        self._grow(np.zeros(len(cats), np.int64))

    @classmethod
    def of(cls, df: pd.DataFrame) -> "_Room | None":
        """The room of a tail (a frame as :func:`_by_meter` gives it); None: one it cannot hold."""
        ts = df["ts"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype) or ts.dtype.tz is not datetime.timezone.utc:
            return None
        cols = {}
        for c in df.columns:
            if c in ("meter_id", "ts"):
                continue
            if _cached(c):
                cols[c] = np.asarray(_values(df[c]), bool if str(c).startswith(KNOWN) else float)
                continue
            if not isinstance(c, str) or c.startswith("_") or df[c].dtype != np.float64:
                return None
            cols[c] = df[c].to_numpy()
        mid = df["meter_id"].array
        lo, hi = _blocks_of(mid.categories, mid.codes, mid.categories, None)
        return cls(mid.categories, ts.array.unit, lo, hi, ts.array.asi8, cols)

    def rows(self) -> int:
        return int((self.end - self.start).sum())

    def view(self) -> _TailView:
        return _TailView(self.cats, self.start, self.end, self.t, self.unit)

    def takes(self, piece: pd.DataFrame) -> bool:
        """Whether :meth:`append` takes ``piece`` as it is: its stamps not finer than the room's,
        its channels the room's (float numpy columns)."""
        if _UNITS.index(piece["ts"].array.unit) < _UNITS.index(self.unit):
            return False
        for c in piece.columns:
            if c in ("meter_id", "ts"):
                continue
            d = piece[c].dtype
            if c not in self.cols or _cached(c) or not isinstance(d, np.dtype) or d.kind != "f":
                return False
        return True

    def append(self, piece: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> None:
        """The rows [lo, hi) of ``piece`` (per meter of the room; as :func:`_by_meter` gives it, each
        after its meter's readings in time) written after its meter's readings; the room's columns
        the piece lacks: NaN (False for known-score flags), as :func:`_merge` fills them."""
        more = hi - lo
        if not more.any():
            return
        if np.any(self.end + more > self.base + self.cap):
            self._grow(more)
        at, src = _ranges(self.end, more), _ranges(lo, more)
        self.t[at] = piece["ts"].array.as_unit(self.unit).asi8[src]
        for c, s in self.cols.items():
            s[at] = piece[c].to_numpy()[src] if c in piece.columns else _fill(c)
        self.end = self.end + more

    def trim(self) -> None:
        """The arrays made again when they hold more than twice what blocks made now would (a
        block is not made smaller as its front is cut: a tail that was long once, a fast tier's
        tail taken from the slow tier's, an open period's readings let go, would keep its room)."""
        n = self.end - self.start
        if int(self.cap.sum()) > 2 * int((n + np.maximum(np.ceil(ROOM_SPARE * n).astype(np.int64), ROOM_LEAST)).sum()):
            self._grow(np.zeros(len(n), np.int64))

    def _grow(self, more: np.ndarray) -> None:
        """The arrays made again: each meter's readings at its block's base, the block with room
        for ``more`` readings and :data:`ROOM_SPARE` of them all (at least :data:`ROOM_LEAST`)."""
        n = self.end - self.start
        need = n + more
        cap = need + np.maximum(np.ceil(ROOM_SPARE * need).astype(np.int64), ROOM_LEAST)
        base = np.cumsum(cap) - cap
        src, dst = _ranges(self.start, n), _ranges(base, n)
        size = int(cap.sum())

        def moved(s: np.ndarray) -> np.ndarray:
            out = np.zeros(size, s.dtype)
            out[dst] = s[src]
            return out

        self.t = moved(self.t)
        self.cols = {c: moved(s) for c, s in self.cols.items()}
        self.cap, self.base, self.start, self.end = cap, base, base.copy(), base + n
        self.grown += 1

    def gather(self, meters: np.ndarray | None = None) -> pd.DataFrame:
        """The readings of ``meters`` (per category; None: all) as a frame, as :func:`_merge` gives
        the judged meters' tails with a piece: by meter then time, ``meter_id`` a Categorical of the
        meters that have rows, ``ts`` tz-aware UTC, every column (the ``fresh`` meters' known scores
        NaN and False)."""
        n = self.end - self.start
        if meters is not None:
            n = np.where(meters, n, 0)
        used = np.flatnonzero(n > 0)
        n = n[used]
        rows = _ranges(self.start[used], n)
        cols = {"meter_id": pd.Categorical.from_codes(np.repeat(np.arange(len(used), dtype=np.int64), n),
                                                      categories=self.cats[used]),
                "ts": pd.DatetimeIndex(self.t.take(rows).view(f"M8[{self.unit}]")).tz_localize("UTC").array}
        fresh = self.fresh[used]
        fresh = np.repeat(fresh, n) if fresh.any() else None
        for c, s in self.cols.items():
            v = s.take(rows)
            if fresh is not None and _cached(c):
                v[fresh] = _fill(c)
            cols[c] = v
        out = pd.DataFrame(cols, copy=False)
        out.__dict__["_ww_by_meter"] = True
        return out

    def frame(self) -> pd.DataFrame | None:
        """The tail as a frame (None: no readings)."""
        return self.gather() if self.rows() else None

    def put_known(self, rows: np.ndarray, known: dict, every: bool = False) -> None:
        """Known-score columns (``known``) of the storage ``rows`` (the judged meters' readings
        after the cut); the room's other known-score columns there: NaN and False (as the frame's
        merge fills the judged meters' rows of a column the cut tail lacks), or, with ``every``
        (every meter judged: the cut tail is the tail), dropped. A new column: NaN and False for
        the other meters."""
        for c, v in known.items():
            if c not in self.cols:
                self.cols[c] = np.full(len(self.t), _fill(c))
            self.cols[c][rows] = v
        for c in [c for c in self.cols if _cached(c) and c not in known]:
            if every:
                del self.cols[c]
            else:
                self.cols[c][rows] = _fill(c)

    def drop_columns(self, cols) -> None:
        for c in cols:
            self.cols.pop(c, None)

    def drop(self, meters: set[str]) -> None:
        """Forget the readings of ``meters`` (their blocks left empty)."""
        at = np.asarray([str(m) in meters for m in self.cats], bool)
        self.end = np.where(at, self.start, self.end)
        self.fresh &= ~at

    def nbytes(self) -> int:
        """Bytes held (the arrays, room included, and the per-meter positions)."""
        return int(self.t.nbytes + sum(s.nbytes for s in self.cols.values())
                   + sum(a.nbytes for a in (self.start, self.end, self.base, self.cap, self.fresh)))

def _merge(a: pd.DataFrame | _Side, b: pd.DataFrame | _Side, a_meters: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of ``a`` and ``b`` (each as :func:`_by_meter` gives) sorted by meter then time, a
    meter's rows of ``a`` before its rows of ``b``; of ``a`` only the meters ``a_meters`` says
    (per category of ``a``; None: all). Each side holds a meter's rows in one block, so every
    column is put together from whole blocks (copies of contiguous slices, or one gather of the
    rows in output order; no sort). When some meter's rows of ``b`` do not all follow its rows of
    ``a`` in time (a late reading), the rows are sorted instead.

    Columns one side lacks: NaN, and False for known-score flags (``_k:``). Categories: the meters
    that have rows."""
    res = pd.DataFrame(_merge_sides(a if isinstance(a, _Side) else _Side.of(a),
                                    b if isinstance(b, _Side) else _Side.of(b), a_meters), copy=False)
    res.__dict__["_ww_by_meter"] = True
    return res


def _merge_sides(a: _Side, b: _Side, a_meters: np.ndarray | None = None) -> dict:
    """:func:`_merge` of two sides (:class:`_Side`), as a dict of its columns."""
    ca, cb = a.cats, b.cats
    cats = ca.union(cb) if not ca.equals(cb) else ca
    lo_a, hi_a = _blocks_of(ca, a.codes, cats, a_meters)
    lo_b, hi_b = _blocks_of(cb, b.codes, cats, None)
    n_a, n_b = hi_a - lo_a, hi_b - lo_b
    # The finer unit of the two (as pd.concat widens it): a piece in finer units than the carried
    # tail keeps its sub-unit times.
    unit = min(a.ts.unit, b.ts.unit, key=_UNITS.index)
    ta, tb = a.ts.as_unit(unit).asi8, b.ts.as_unit(unit).asi8
    both = np.flatnonzero((n_a > 0) & (n_b > 0))
    late = bool(both.size) and bool(np.any(ta[hi_a[both] - 1] > tb[lo_b[both]]))
    used = np.flatnonzero(n_a + n_b > 0)
    out_cats = cats[used]
    # Runs of rows taken from one side, in output order: per meter its block of a, then of b;
    # consecutive blocks of one side that touch are one run (idle meters' rows stay one slice).
    # (whole-array: the blocks of the used meters, a's then b's, the empty ones left out, a block
    # starting a new run unless it is of the side before and starts where that one ended)
    b_side = np.tile(np.array([False, True]), len(used))
    b_lo = np.column_stack([lo_a[used], lo_b[used]]).ravel()
    b_hi = np.column_stack([hi_a[used], hi_b[used]]).ravel()
    has = b_hi > b_lo
    b_side, b_lo, b_hi = b_side[has], b_lo[has], b_hi[has]
    new_run = np.ones(len(b_lo), bool)
    new_run[1:] = (b_side[1:] != b_side[:-1]) | (b_lo[1:] != b_hi[:-1])
    n_runs = int(new_run.sum())
    # Few runs (a piece of a few meters; the idle meters put back): whole slices. Many (every
    # meter in the piece, one reading each: the live case): the rows of both sides one after the
    # other, gathered in output order by one index computed once (each column one concatenation
    # and one take; no per-row masks read and written, tail). Both give NumPy's promotion of the
    # two sides' dtypes where both have rows.
    idx = None
    runs: list[list[int]] = []
    if n_runs <= RUNS_AS_SLICES:
        first = np.flatnonzero(new_run)
        last = np.append(first[1:], len(b_lo))[:len(first)] - 1   # (no runs: no rows, an empty frame)
        runs = [[int(sd), int(lo), int(hi)] for sd, lo, hi in
                zip(b_side[first].tolist(), b_lo[first].tolist(), b_hi[last].tolist())]
    else:
        idx = _ranges(np.where(b_side, b_lo + a.n, b_lo), b_hi - b_lo)

    def put(xa, xb, fill):
        if idx is None:
            parts = [x[lo:hi] if x is not None else np.full(hi - lo, fill)
                     for side, lo, hi in runs for x in ((xa, xb)[side],)]
            return np.concatenate(parts) if parts else np.zeros(0, (xa if xa is not None else xb).dtype)
        xa = np.full(a.n, fill) if xa is None else xa
        xb = np.full(b.n, fill) if xb is None else xb
        return np.concatenate([xa, xb]).take(idx)

    order = None
    if late:   # put together as above, then sorted by meter and time (stable)
        order = np.lexsort((put(ta, tb, 0), np.repeat(np.arange(len(used)), (n_a + n_b)[used])))
        if idx is not None:   # (one gather in sorted order)
            idx, order = idx[order], None

    def build(xa, xb, fill):
        out = put(xa, xb, fill)
        return out if order is None else out[order]

    codes = np.repeat(np.arange(len(used), dtype=np.int64), (n_a + n_b)[used])
    cols = {"meter_id": pd.Categorical.from_codes(codes, categories=out_cats),
            "ts": pd.DatetimeIndex(build(ta, tb, 0).view(f"M8[{unit}]")).tz_localize("UTC").array}
    in_a, in_b = set(a.columns), set(b.columns)
    for c in dict.fromkeys([*a.columns, *b.columns]):
        if c in cols:
            continue
        xa = a.values(c) if c in in_a else None
        xb = b.values(c) if c in in_b else None
        cols[c] = build(xa, xb, False if str(c).startswith(KNOWN) else np.nan)
    return cols


def _ranges(lo: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The ranges ``[lo, lo + n)`` one after the other, as one index array."""
    lo, n = np.asarray(lo, np.int64), np.asarray(n, np.int64)
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    off = np.cumsum(n) - n   # where each range starts in the output
    return np.repeat(lo - off, n) + np.arange(total, dtype=np.int64)


def _calm_tail(tail: pd.DataFrame, piece: pd.DataFrame, new: pd.DataFrame | None, judged: np.ndarray,
               calm: np.ndarray, cut: np.ndarray) -> pd.DataFrame:
    """The tail after a piece with calm meters (:meth:`Stitcher._calm`), sorted by meter then time:
    per meter of ``tail`` neither ``judged`` nor ``calm`` its rows as they were; per ``calm`` one
    its rows and the piece's, less the first ``cut``; per meter of ``new`` (the judged meters'
    tails as :meth:`Stitcher._cut_tail` left them) its rows. The calm meters' rows hold no known
    scores (NaN, flags False: scored afresh when next judged)."""
    cats = tail["meter_id"].cat.categories
    t_lo, t_hi = _blocks(tail, cats, None)
    p_lo, p_hi = _blocks(piece, cats, None)
    n_t = len(tail)
    keep = ~judged | calm
    head = np.where(calm, np.minimum(cut, t_hi - t_lo), 0)   # dropped from its tail's rows
    skip = np.where(calm, cut - head, 0)                      # ... and from the piece's
    lo1, n1 = t_lo + head, t_hi - t_lo - head
    lo2, n2 = n_t + p_lo + skip, np.where(calm, p_hi - p_lo - skip, 0)
    names = np.asarray(cats[keep], dtype=object)
    flag = calm[keep]
    lo1, n1, lo2, n2 = lo1[keep], n1[keep], lo2[keep], n2[keep]
    frames = [tail, piece]
    if new is not None and len(new):
        nc = new["meter_id"].cat.categories
        j_lo, j_hi = _blocks(new, nc, None)
        has = j_hi > j_lo
        k = int(has.sum())
        names = np.concatenate([names, np.asarray(nc[has], dtype=object)])
        flag = np.concatenate([flag, np.zeros(k, bool)])
        lo1 = np.concatenate([lo1, n_t + len(piece) + j_lo[has]])
        n1 = np.concatenate([n1, (j_hi - j_lo)[has]])
        lo2, n2 = np.concatenate([lo2, np.zeros(k, np.int64)]), np.concatenate([n2, np.zeros(k, np.int64)])
        frames.append(new)
    used = (n1 + n2) > 0
    order = np.flatnonzero(used)[np.argsort(names[used], kind="stable")]
    names, flag, lo1, n1, lo2, n2 = names[order], flag[order], lo1[order], n1[order], lo2[order], n2[order]
    rows = _ranges(np.column_stack([lo1, lo2]).ravel(), np.column_stack([n1, n2]).ravel())
    codes = np.repeat(np.arange(len(names), dtype=np.int64), n1 + n2)
    return _gather(frames, rows, codes, pd.Index(names, dtype=object), np.repeat(flag, n1 + n2))


def _gather(frames: list[pd.DataFrame], rows: np.ndarray, codes: np.ndarray, cats: pd.Index,
            unknown: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of frames (each as :func:`_by_meter` gives) put together: ``rows`` index their rows
    one frame after the other, in the order wanted (by meter then time); ``codes`` each row's
    meter among ``cats``. Every column of the frames, NaN where a frame lacks it (False for
    known-score flags), as :func:`_merge` fills them; on the ``unknown`` rows no known score."""
    unit = min((f["ts"].array.unit for f in frames), key=_UNITS.index)
    ts = np.concatenate([f["ts"].array.as_unit(unit).asi8 for f in frames])[rows]
    cols = {"meter_id": pd.Categorical.from_codes(codes, categories=cats),
            "ts": pd.DatetimeIndex(ts.view(f"M8[{unit}]")).tz_localize("UTC").array}
    for c in dict.fromkeys(c for f in frames for c in f.columns):
        if c in cols:
            continue
        fill = False if str(c).startswith(KNOWN) else np.nan
        v = np.concatenate([_values(f[c]) if c in f.columns else np.full(len(f), fill) for f in frames])[rows]
        if unknown is not None and _cached(c):
            v[unknown] = fill
        cols[c] = v
    out = pd.DataFrame(cols, copy=False)
    out.__dict__["_ww_by_meter"] = True
    return out


def _rows(df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows ``mask`` selects of a frame as :func:`_by_meter` gives it (still in that form;
    ``meter_id`` keeps its categories)."""
    if mask.all():
        return df
    out = pd.DataFrame({c: df[c].array[mask] for c in df.columns}, copy=False)
    out.__dict__["_ww_by_meter"] = True
    return out


def _blocks(df: pd.DataFrame, cats: pd.Index, take: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per meter of ``cats``: its rows [lo, hi) in ``df`` (grouped by meter in category order);
    empty for a meter ``df`` lacks or ``take`` (per category of ``df``) leaves out. Meters of
    ``df`` that ``cats`` lacks are left out (a piece's new meters, asked about the tail's)."""
    mid = df["meter_id"].array
    return _blocks_of(mid.categories, mid.codes, cats, take)


def _blocks_of(own: pd.Index, codes: np.ndarray, cats: pd.Index, take: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_blocks` of rows given by their meters' categories ``own`` and codes (sorted)."""
    k = np.arange(len(own))
    # (fo) searched as the codes' own integers (int8/int16 for a Categorical's): int64 keys made
    # NumPy convert the whole codes array (the tail's: ~32,000-85,000 rows) at every search
    q = k.astype(codes.dtype) if codes.dtype.kind == "i" and codes.dtype.itemsize < 8 \
        and len(own) <= np.iinfo(codes.dtype).max else k
    lo_own, hi_own = np.searchsorted(codes, q, "left"), np.searchsorted(codes, q, "right")
    if take is not None:
        hi_own = np.where(take, hi_own, lo_own)
    lo, hi = np.zeros(len(cats), np.int64), np.zeros(len(cats), np.int64)
    # The same meters (a tail asked about its own, a piece of every meter): no look-up (an object
    # Index's get_indexer took ~0.3-4 ms for 200 meters, each call; lat65).
    at = k if own is cats or own.equals(cats) else cats.get_indexer(own)
    ok = at >= 0   # (-1 would write the last meter's block)
    lo[at[ok]], hi[at[ok]] = lo_own[ok], hi_own[ok]
    return lo, hi


def _without_copies(piece: pd.DataFrame, tail: "_TailView | None") -> pd.DataFrame:
    """``piece`` (as :func:`_by_meter` gives) without copies of a reading, as a store's ingest
    keeps them (:mod:`wattwatch.store.duck`) for callers that feed a stitcher without one (the
    stream's store merges them first): of a piece's rows of one meter at one instant, the most
    complete (then the first), its missing channels filled from the others; a row at the instant
    of a reading the tail holds is dropped (the held reading keeps its values: its scores may be
    final already; a store would fill channels it lacks from the copy). A copy counted as a reading
    held took lost readings from the share's cap (rev56). Vectorised; a piece whose readings all
    follow its meters' tails and differ in time costs two comparisons per row and one look-up
    per meter."""
    n = len(piece)
    if n == 0:
        return piece
    codes = piece["meter_id"].array.codes
    ts = piece["ts"].array
    t = ts.asi8
    drop = None
    # Copies within the piece: rows next to each other (sorted by meter, then time, stably).
    same = (codes[1:] == codes[:-1]) & (t[1:] == t[:-1])
    if same.any():
        group = np.concatenate([[0], np.cumsum(~same)])
        multi = np.flatnonzero(np.bincount(group)[group] > 1)
        chans = [c for c in piece.columns if c not in ("meter_id", "ts") and not _cached(c)]
        sub = piece.iloc[multi]
        nn = np.zeros(len(multi), np.int64)
        for c in chans:
            nn += sub[c].notna().to_numpy()
        rank = np.lexsort((multi, -nn, group[multi]))   # best first per group: most complete, then first
        best = sub.iloc[rank]
        firsts = best.groupby(group[multi][rank], sort=False)[chans].first() if chans else None
        keep_row = multi[rank][np.r_[True, group[multi][rank][1:] != group[multi][rank][:-1]]]
        drop = np.zeros(n, bool)
        drop[multi] = True
        drop[keep_row] = False
        if chans:
            cols = {}
            for c in chans:
                col = piece[c].copy()
                col.iloc[keep_row] = firsts[c].to_numpy()
                cols[c] = col.array
            piece = pd.DataFrame({c: cols.get(c, piece[c].array) for c in piece.columns}, copy=False)
    # Copies of readings the tail holds: only where a meter's piece starts at or before its tail's end.
    if tail is not None and tail.rows():
        cats = piece["meter_id"].cat.categories
        lo_t, hi_t = tail.blocks(cats)
        k = np.arange(len(cats))
        lo_p, hi_p = np.searchsorted(codes, k, "left"), np.searchsorted(codes, k, "right")
        both = np.flatnonzero((hi_t > lo_t) & (hi_p > lo_p))
        if both.size:
            unit = min(tail.unit, ts.unit, key=_UNITS.index)
            last_t = tail.stamps(unit, hi_t[both] - 1)
            first_p = ts[lo_p[both]].as_unit(unit).asi8
            at = both[first_p <= last_t]
            if at.size:
                # The candidates' tail rows and piece rows as (meter, time) pairs: a piece row is a copy
                # when a tail row has its pair (sorted together, tail rows first in a pair's run).
                rows_t, rows_p = _ranges(lo_t[at], hi_t[at] - lo_t[at]), _ranges(lo_p[at], hi_p[at] - lo_p[at])
                k_t = np.repeat(at, hi_t[at] - lo_t[at])
                k_p = codes[rows_p].astype(np.int64)
                tt = tail.stamps(unit, rows_t)
                tp = ts[rows_p].as_unit(unit).asi8
                kk, tk = np.concatenate([k_t, k_p]), np.concatenate([tt, tp])
                side = np.r_[np.zeros(len(rows_t), np.int8), np.ones(len(rows_p), np.int8)]
                o = np.lexsort((side, tk, kk))
                new = np.r_[True, (kk[o][1:] != kk[o][:-1]) | (tk[o][1:] != tk[o][:-1])]
                run = np.cumsum(new) - 1
                held = np.zeros(int(run[-1]) + 1, bool)
                held[run[side[o] == 0]] = True
                is_p = side[o] == 1
                copy = np.zeros(len(rows_p), bool)
                copy[o[is_p] - len(rows_t)] = held[run[is_p]]
                if copy.any():
                    drop = np.zeros(n, bool) if drop is None else drop
                    drop[rows_p[copy]] = True
    if drop is None or not drop.any():
        return piece
    return _rows(piece, ~drop)


def _without_unkept(tail: pd.DataFrame, unkept: dict[str, int]) -> pd.DataFrame:
    """``tail`` (as :func:`_by_meter` gives) without the known-score columns of the detectors whose
    known scores are not kept now (``unkept``: pieces left, :data:`UNKEPT_PIECES`). Held on, such a
    column was merged, gathered, prepared and cut at every piece and read back as known scores
    that saved nothing (packet_loss at 200 meters: two columns of ~150,000 rows a step; lat65).
    Dropped, the detector scores those rows afresh, as a tail loaded from a checkpoint or one
    whose scores were never kept: the same scores (a known score is a final one)."""
    gone = [c for n, left in unkept.items() if left > 0 for c in (f"_c:{n}", KNOWN + n) if c in tail.columns]
    if not gone:
        return tail
    out = pd.DataFrame({c: tail[c].array for c in tail.columns if c not in gone}, copy=False)
    out.__dict__["_ww_by_meter"] = True
    return out


def _plain(piece: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in (*AUX, "_n") if c in piece.columns]
    return piece.drop(columns=drop) if drop else piece


def latest(alerts: list[Alert]) -> dict[str, Alert]:
    """The last version of every alert id in a sequence of upserts."""
    out: dict[str, Alert] = {}
    for a in alerts:
        out[a.id] = a
    return out


def independent(detectors: list[Detector]) -> list[list[Detector]]:
    """``detectors`` (in blocking order) in groups that no blocking links (:func:`core.blockers`:
    no detector's findings blank one of another group): each group judged on its own gives every
    score and alert that judging them together gives."""
    dets = core.order(detectors)
    blk = core.blockers(dets, [])
    up = {d.name: d.name for d in dets}

    def root(n: str) -> str:
        while up[n] != n:
            n = up[n]
        return n

    for d in dets:
        for b, _ in blk[d.name]:
            up[root(b)] = root(d.name)
    groups: dict[str, list[Detector]] = {}
    for d in dets:
        groups.setdefault(root(d.name), []).append(d)
    return list(groups.values())


def read_channels(detectors: list[Detector]) -> frozenset[str] | None:
    """Every channel ``detectors`` read (``Detector.reads``); None when one does not declare them."""
    out: set[str] = set()
    for d in detectors:
        r = d.reads() if hasattr(d, "reads") else None
        if r is None:
            return None
        out.update(r)
    return frozenset(out)


def alike(groups: list[list[Detector]]) -> list[list[Detector]]:
    """``groups`` (as :func:`independent` gives them) with those that read the same channels
    (:func:`read_channels`) and alike take calm meters (every detector has ``calm_meters``, or
    not) as one, at the place of the first. One stitcher for them carries no channel more than
    each would (only rows: a reading stays as long as the longest reach among them needs), and a
    step merges, cuts and prepares its tail once instead of once per group (frozen_readings and
    channel_invalid, both over every channel: a fast step's CPU x 0.92 at 8 meters, x 0.95-0.98
    at 200; lat64). Calm meters are taken only by a stitcher all of whose detectors can say so
    (:meth:`Stitcher._calm`), so such a group is not joined to one that cannot."""
    out: dict[tuple, list[Detector]] = {}
    for g in groups:
        calm = all(type(d).calm_meters is not Detector.calm_meters for d in g)
        out.setdefault((read_channels(g), calm), []).extend(g)
    return [core.order(g) for g in out.values()]


class Stitchers:
    """Stitched scoring of ``detectors`` by one :class:`Stitcher` per group that no blocking links
    (:func:`independent`), each carrying only the channels its detectors read and the tail their
    own reach needs: a detector with a reach of hours (packet_loss: 6 h each way, on the times
    alone) no longer makes every detector's readings be carried, merged and cut over its reach.
    Groups that read the same channels share one stitcher (:func:`alike`; ``join=False``: one
    each). Fed and flushed as one stitcher; a step is the groups' steps together, its alerts in
    the order one stitcher per group gives them (by group, then detector; ``scores``, where kept,
    in the joined stitchers' order)."""

    def __init__(self, detectors: list[Detector], join: bool = True, **kw):
        self.detectors = core.order(detectors)
        groups = [core.order(g) for g in independent(self.detectors)]
        self.parts = [Stitcher(g, columns=read_channels(g), **kw) for g in (alike(groups) if join else groups)]
        # Each detector's place among the groups one by one: a step's alerts are put in that order
        # (a stitcher gives its alerts detector by detector, in its detectors' order).
        self._rank = {d.name: i for i, d in enumerate(d for g in groups for d in g)} \
            if len(self.parts) < len(groups) else None

    def feed(self, piece: pd.DataFrame, final: bool = False) -> Step:
        piece = _by_meter(_plain(piece))   # once for every group (each takes its channels of it)
        return self._ordered(_joined([p.feed(piece, final=final) for p in self.parts]))

    def flush(self) -> Step:
        return self._ordered(_joined([p.flush() for p in self.parts]))

    def _ordered(self, step: Step) -> Step:
        if self._rank is not None and len(step.alerts) > 1:
            last = len(self._rank)
            step.alerts = sorted(step.alerts, key=lambda a: self._rank.get(a.detector, last))   # (stable)
        return step

    @property
    def tails(self) -> list[pd.DataFrame]:
        return [p.tail for p in self.parts if p.tail is not None]


def _joined(steps: list[Step]) -> Step:
    """Steps of stitchers of disjoint detectors on the same piece, as one."""
    out = Step()
    parts = []
    for st in steps:
        out.alerts += st.alerts
        out.open_ids |= st.open_ids
        out.unclean |= st.unclean
        out.notices += [n for n in st.notices if n not in out.notices]
        if st.scores is not None:
            parts.append(st.scores)
    out.scores = pd.concat(parts, ignore_index=True) if parts else None
    return out
