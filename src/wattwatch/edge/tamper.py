"""The meter's tamper state machine: per-cycle measurements in, tamper events out.

Every cycle is judged with the batch rule's own decision (:func:`wattwatch.detect.rules.neutral.
verdict`, same limits: ΔI above max(0.5 A, 2 % of I_L), light-load rule, the band between leakage
and the limit left undecided), so batch, live and edge agree on the same RMS values. Around it:

- **persistence**: the meter enters ``tamper`` once cycles over the limit add up to
  ``persistence_s`` (default 30 s) without ``reset_s`` of clearly healthy cycles in between (an
  intermittent bypass that switches off for a few seconds still adds up); it leaves once the
  neutral has been clearly healthy for ``clear_s``;
- **leakage**: earth leakage below ``leak_normal_a`` (30 mA) is normal. It is read from the RMS
  of the instantaneous residual I_L − I_N (what an RCD sees; its fundamental on noisy cycles) less
  what the two current sensors' gain mismatch alone can make of the load, ``leak_ct_rel`` (0.5 %,
  class 0.5 sensors) of I_L: a judged cycle under the tamper limit whose leakage is at or above ``leak_normal_a`` is counted
  as ``leakage`` and the status report says ``earth_leakage = "above_normal"``; never tamper (the
  tamper limit is the batch rule's, 0.5 A or more). On heavy loads the sensors cannot resolve
  30 mA (at 20 A they may disagree by 100 mA): such leakage reads normal;
- **kind**: ``neutral_bypass`` (I_N ≈ 0 while I_L > 5 A) or ``partial_earth_return``
  (:func:`~wattwatch.detect.rules.neutral.tamper_kind`);
- **harmonics**: THD of the phase current at or above ``noisy_thd_pct`` (the batch harmonic rule's
  30 %) marks the cycle ``STATUS_SIGNAL_NOISY``; on such cycles ΔI is judged on the fundamental
  (FFT bin 1), so a neutral sensor that reads an LED/SMPS load's 3rd/5th harmonics differently
  does not look like a diversion, while a diversion (a share of the whole current) still does;
- **inrush**: a cycle whose phase current is ``inrush_ratio`` times (and ``inrush_min_a`` above)
  the lowest of the preceding ``inrush_ref_s`` starts a motor start; it and the following
  ``inrush_max_s`` are not judged (a CT saturating on the start's DC offset reads a short neutral
  deficit), the same exclusion as the batch rule's :func:`~wattwatch.detect.rules._common.inrush`;
  a cycle in which the phase current stepped by more than ``inrush_min_a`` and ``step_rel`` of the
  cycle before holds two loads and is not judged either (a bypass leaves the phase current as it
  was: only the neutral drops);
- **supply**: below ``min_voltage_v`` nothing is judged (an outage or a deep sag).

The judgement is vectorised over the cycles of a block, and so are the harmonics' on/off switches;
the state is stepped cycle by cycle only in blocks that hold a cycle over the limit, or while a fault
is pending or open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone

import numpy as np
from scipy.ndimage import minimum_filter1d

from wattwatch.detect.rules._common import INRUSH_MIN_A, INRUSH_RATIO
from wattwatch.detect.rules.harmonic import HarmonicNoiseConfig
from wattwatch.detect.rules.neutral import NeutralTamperConfig, single_phase_limit, tamper_kind, verdict

# Keys of the batch rule the edge has no use for: its held departure from a meter's learned relation.
BATCH_ONLY = frozenset({"level_bins", "level_min_n", "persist_s", "persist_min_n", "fund_share_q", "fund_share_floor"})
from wattwatch.edge.metrology import Cycles

EPS = 1e-9  # durations add up cycle by cycle in floating point


@dataclass(frozen=True)
class TamperConfig:
    persistence_s: float = 30.0
    reset_s: float = 5.0
    clear_s: float = 60.0
    leak_normal_a: float = 0.030
    leak_ct_rel: float = 0.005
    noisy_thd_pct: float = HarmonicNoiseConfig.limit_pct
    noisy_min_a: float = HarmonicNoiseConfig.min_current_a
    noisy_s: float = 10.0
    inrush_ratio: float = INRUSH_RATIO
    inrush_min_a: float = INRUSH_MIN_A
    inrush_ref_s: float = 1.0
    inrush_max_s: float = 3.0
    step_rel: float = 0.2
    min_voltage_v: float = 50.0
    neutral: NeutralTamperConfig = field(default_factory=NeutralTamperConfig)

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "[tamper]") -> "TamperConfig":
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"{where} must be a table, got {d!r}"[:200])
        d = dict(d or {})
        nd = d.pop("neutral", {}) or {}
        if not isinstance(nd, dict):
            raise ValueError(f"{where}.neutral must be a table, got {nd!r}"[:200])
        known = {f.name for f in fields(cls)} - {"neutral"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        out = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}: {k} must be a number >= 0, got {v!r}")
            out[k] = float(v)
        nfields = {f.name for f in fields(NeutralTamperConfig)} - {"post", "enabled"} - BATCH_ONLY
        held = set(nd) & BATCH_ONLY
        if held:
            raise ValueError(f"{where}.neutral: {sorted(held)} tune the batch rule's held departure from a meter's "
                             f"learned neutral relation; the edge judges each cycle on its own and has none")
        bad = set(nd) - nfields
        if bad:
            raise ValueError(f"{where}.neutral: unknown key(s) {sorted(bad)}; known: {', '.join(sorted(nfields))}")
        for k, v in nd.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}.neutral: {k} must be a number >= 0, got {v!r}"[:200])
        neutral = replace(NeutralTamperConfig(), **{k: float(v) for k, v in nd.items()})
        return cls(neutral=neutral, **out)


@dataclass
class Judged:
    """Per-cycle judgement (arrays) of one block."""

    score: np.ndarray        # >= 1 over the limit, < 1 healthy, NaN not judged
    limit: np.ndarray
    delta: np.ndarray        # the ΔI judged (fundamental on noisy cycles)
    noisy: np.ndarray
    surge: np.ndarray
    supplied: np.ndarray
    leak: np.ndarray         # judged, under the tamper limit, leakage at or above leak_normal_a
    leakage: np.ndarray      # residual less the sensors' possible gain mismatch (leak_ct_rel × I_L)


class TamperMachine:
    """Steps the tamper state over the cycles of a meter; :meth:`step` returns the events."""

    vector_noisy = True   # False: step noisy blocks cycle by cycle too (the tests compare the two)

    def __init__(self, cfg: TamperConfig, cycle_s: float, t0: float = 0.0, three: bool = False):
        self.cfg = cfg
        self.cycle_s = float(cycle_s)
        self.t0 = float(t0)
        self.three = three
        self.state = "normal"
        self.noisy_state = False
        self.over_s = 0.0
        self.ok_s = 0.0
        self.noisy_run_s = 0.0
        self.clean_run_s = 0.0
        self.first_over: int | None = None
        self.last_over: int | None = None
        self.episodes = 0
        self._was_over = False
        self._peak: dict = {}
        self._hist = np.empty(0)                  # I_L of the last inrush_ref_s of cycles
        self._last_start = -(1 << 40)             # cycle of the last inrush start
        self.counts = {"cycles": 0, "over": 0, "noisy": 0, "surge": 0, "unsupplied": 0, "leakage": 0}
        self._last_ref = None
        self._noisy_since = 0
        self._noisy_snap: dict = {}

    def ts(self, cycle: int) -> str:
        t = self.t0 + cycle * self.cycle_s
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # ------------------------------------------------------------------------ vectorised part

    def judge(self, c: Cycles) -> Judged:
        cfg, ncfg = self.cfg, self.cfg.neutral
        k = len(c)
        # Inrush: the current against the lowest of the preceding inrush_ref_s (carried history).
        r = max(1, int(round(cfg.inrush_ref_s / self.cycle_s)))
        hist = np.concatenate([self._hist, c.i_l])
        h = len(self._hist)
        if len(hist) > 1:
            lo = minimum_filter1d(hist, size=r, origin=(r - 1) // 2, mode="nearest")  # min of hist[j-r+1 .. j]
            ref = np.concatenate([[np.nan], lo[:-1]])[h:]                             # min over the r before
        else:
            ref = np.full(k, np.nan)
        start = (c.i_l >= cfg.inrush_ratio * ref) & (c.i_l - ref >= cfg.inrush_min_a)
        # A cycle in which the load current stepped holds two loads (a start caught part-way): not
        # judged either. A bypass leaves the phase current as it was; only the neutral drops.
        prev = np.concatenate([[np.nan], hist[:-1]])[h:]
        step = np.abs(c.i_l - prev) > np.maximum(cfg.inrush_min_a, cfg.step_rel * prev)
        self._hist = hist[-r:]
        idx = c.index
        last = np.maximum.accumulate(np.where(start, idx, self._last_start)) if k else np.empty(0, int)
        if k:
            self._last_start = int(last[-1])
        surge = ((idx - last) * self.cycle_s <= cfg.inrush_max_s) | step
        supplied = c.v >= cfg.min_voltage_v
        noisy = supplied & (c.thd >= cfg.noisy_thd_pct) & (c.i_l >= cfg.noisy_min_a)
        delta = np.where(noisy, c.delta_fund, c.delta)
        if self.three:
            mean = c.i_ph.mean(axis=1)
            limit = np.maximum(ncfg.abs_limit_3ph_a, ncfg.rel_limit_3ph * mean)
            i_ref = c.i_ph[:, 0]
        else:
            mean = c.i_l
            limit = single_phase_limit(c.i_l, ncfg)
            i_ref = c.i_l
        open_ct = (c.i_l < ncfg.zero_a) & (c.i_n >= ncfg.min_load_a)
        base = supplied & np.isfinite(c.i_n) & ~open_ct & ~surge
        informative = base & (mean >= ncfg.min_load_a)
        light = base & ~np.bool_(self.three) & (i_ref >= ncfg.low_load_a) & (i_ref < ncfg.min_load_a)
        score = verdict(delta, i_ref, limit, np.full(k, self.three), informative, light, ncfg)
        # On noisy cycles the residual's fundamental (as ΔI): the neutral sensor's response to an
        # LED load's harmonics (triplens add up in a three-phase neutral) is not earth leakage.
        res = c.residual if c.residual_fund is None else np.where(noisy, c.residual_fund, c.residual)
        leakage = np.maximum(res - cfg.leak_ct_rel * c.i_l, 0.0)
        leak = base & ~(score >= 1) & (leakage >= cfg.leak_normal_a)
        return Judged(score, limit, delta, noisy, surge, supplied, leak, leakage)

    # ------------------------------------------------------------------------ state

    def step(self, c: Cycles) -> list[dict]:
        """Judge a block of cycles and step the state; the events it produced (entering or
        leaving ``tamper``, ``signal_noisy`` on or off)."""
        if not len(c):
            return []
        j = self.judge(c)
        cfg, dt = self.cfg, self.cycle_s
        over = j.score >= 1
        ok = j.score < 1
        n = self.counts
        n["cycles"] += len(c)
        n["over"] += int(over.sum())
        n["noisy"] += int(j.noisy.sum())
        n["surge"] += int(j.surge.sum())
        n["unsupplied"] += int((~j.supplied).sum())
        n["leakage"] += int(j.leak.sum())
        self._last_ref = (c, j, len(c) - 1)   # the status report's last cycle, built on demand
        calm = self.state == "normal" and self.first_over is None and not over.any()
        if calm and not self.noisy_state and not j.noisy.any():  # the common case: nothing to step through
            m = int(j.supplied.sum())       # no noisy cycle here: every supplied cycle is a clean one
            if m:
                self.clean_run_s += m * dt
                self.noisy_run_s = 0.0
            return []
        # Only the harmonics' on/off to follow (an LED/SMPS home): numpy over the block, unless the
        # block is a few cycles (a meter's DMA block), where the loop costs less than numpy's calls.
        if calm and self.vector_noisy and len(c) > 16:
            return self._step_noisy(c, j, ok)
        events = []
        for k in range(len(c)):
            if j.noisy[k]:
                self.noisy_run_s += dt
                self.clean_run_s = 0.0
            elif j.supplied[k]:
                self.clean_run_s += dt
                self.noisy_run_s = 0.0
            if not self.noisy_state and self.noisy_run_s >= cfg.noisy_s - EPS:
                self.noisy_state = True
                events.append(self._event("signal_noisy", c, j, k))
            elif self.noisy_state and self.clean_run_s >= cfg.noisy_s - EPS:
                self.noisy_state = False
                events.append(self._event("signal_ok", c, j, k))
            if over[k]:
                if self.first_over is None:
                    self.first_over = int(c.index[k])
                    self.over_s = 0.0
                if not self._was_over:
                    self.episodes += 1
                self._was_over = True
                self.last_over = int(c.index[k])
                self.over_s += dt
                self.ok_s = 0.0
                self._track(c, j, k)
                if self.state != "tamper" and self.over_s >= cfg.persistence_s - EPS:
                    self.state = "tamper"
                    events.append(self._event("tamper", c, j, k))
            elif ok[k]:
                self._was_over = False
                self.ok_s += dt
                if self.state == "tamper" and self.ok_s >= cfg.clear_s - EPS:
                    events.append(self._event("cleared", c, j, k))
                    self.state = "normal"
                    self._forget()
                elif self.state != "tamper" and self.first_over is not None and self.ok_s >= cfg.reset_s - EPS:
                    self._forget()
        return events

    def _step_noisy(self, c: Cycles, j: Judged, ok: np.ndarray) -> list[dict]:
        """:meth:`step` for a block with no fault pending or open: the noisy and clean run lengths
        and the ``signal_noisy`` / ``signal_ok`` switches, vectorised (the loop gives the same)."""
        dt, lim = self.cycle_s, self.cfg.noisy_s - EPS
        noisy = j.noisy
        clean = j.supplied & ~noisy                     # an unsupplied cycle changes neither run
        ar = np.arange(len(c))
        cn, cc = np.cumsum(noisy), np.cumsum(clean)
        last_c = np.maximum.accumulate(np.where(clean, ar, -1))
        last_n = np.maximum.accumulate(np.where(noisy, ar, -1))
        # Run lengths at every cycle: what came in, unless reset in this block, plus the count since.
        nr = np.where(last_c >= 0, 0.0, self.noisy_run_s) + dt * (cn - np.where(last_c >= 0, cn[last_c], 0))
        cr = np.where(last_n >= 0, 0.0, self.clean_run_s) + dt * (cc - np.where(last_n >= 0, cc[last_n], 0))
        decided = np.where(nr >= lim, 1, np.where(cr >= lim, 0, -1))   # one run is 0 at any time
        at = np.maximum.accumulate(np.where(decided >= 0, ar, -1))
        state = np.where(at >= 0, decided[at] == 1, self.noisy_state)
        prev = np.concatenate([[self.noisy_state], state[:-1]])
        events = []
        for k in np.flatnonzero(state != prev):       # the switches only (a few a day)
            self.noisy_state = bool(state[k])
            events.append(self._event("signal_noisy" if state[k] else "signal_ok", c, j, int(k)))
        self.noisy_state = bool(state[-1])
        self.noisy_run_s, self.clean_run_s = float(nr[-1]), float(cr[-1])
        if ok.any():
            self._was_over = False
            self.ok_s += dt * int(ok.sum())
        return events

    def _forget(self) -> None:
        self.first_over = self.last_over = None
        self.over_s = 0.0
        self.episodes = 0
        self._peak = {}

    def _track(self, c: Cycles, j: Judged, k: int) -> None:
        p = self._peak
        p.setdefault("deltas", []).append(float(j.delta[k]))
        del p["deltas"][:-4096]
        if float(j.delta[k]) >= p.get("delta_max", -1):
            p["delta_max"] = float(j.delta[k])
        p["snap"] = self._snapshot(c, j, k)

    def _snapshot(self, c: Cycles, j: Judged, k: int) -> dict:
        def r(x, d=3):
            x = float(x)
            return round(x, d) if math.isfinite(x) else None
        return {"cycle": int(c.index[k]), "ts": self.ts(int(c.index[k])), "v_rms_v": r(c.v[k], 1),
                "i_l_a": r(c.i_l[k]), "i_n_a": r(c.i_n[k]), "expected_i_n_a": r(c.expected[k]),
                "delta_a": r(j.delta[k]), "delta_rms_a": r(c.delta[k]), "delta_fund_a": r(c.delta_fund[k]),
                "residual_a": r(c.residual[k]), "limit_a": r(j.limit[k]), "thd_i_pct": r(c.thd[k], 1),
                "h3_pct": r(c.h3[k], 1), "h5_pct": r(c.h5[k], 1), "h7_pct": r(c.h7[k], 1),
                "freq_hz": r(c.freq[k], 3), "noisy": bool(j.noisy[k]), "inrush": bool(j.surge[k]),
                "earth_leakage_a": r(j.leakage[k]),
                "earth_leakage": "above_normal" if j.leak[k] else "normal" if j.leakage[k] < self.cfg.leak_normal_a
                else None}

    def _event(self, status: str, c: Cycles, j: Judged, k: int) -> dict:
        snap = self._snapshot(c, j, k)
        cyc = int(c.index[k])
        if status in ("tamper", "cleared"):
            p = self._peak.get("snap", snap)
            kind = tamper_kind(p["i_n_a"] or 0.0, p["i_l_a"] or 0.0, p["expected_i_n_a"] or 0.0, self.cfg.neutral)
            deltas = self._peak.get("deltas", [snap["delta_a"] or 0.0])
            start = self.first_over if self.first_over is not None else cyc
            end = cyc if status == "tamper" else (self.last_over if self.last_over is not None else cyc)
            ev = {"status": status, "kind": kind, "delta_a": round(float(np.median(deltas)), 3),
                  "event": f"tamper@{self.ts(start)}", "cycle_start": self.ts(start), "cycle_end": self.ts(end),
                  "evidence": {**p, "delta_max_a": round(self._peak.get("delta_max", 0.0), 3),
                               "over_s": round(self.over_s, 3), "episodes": self.episodes,
                               "phases": 3 if self.three else 1, "at": snap}}
            if status == "cleared":
                ev["cleared_at"] = self.ts(cyc)
            return ev
        # signal_noisy and the signal_ok that ends it share the event and its first cycle.
        if status == "signal_noisy":
            self._noisy_since = cyc - int(round(self.cfg.noisy_s / self.cycle_s)) + 1
            self._noisy_snap = snap
            end, ev = cyc, snap
        else:
            end, ev = cyc - int(round(self.cfg.noisy_s / self.cycle_s)), {**self._noisy_snap, "at": snap}
        start = self._noisy_since
        return {"status": status, "kind": "harmonics", "delta_a": snap["delta_a"], "event": f"noisy@{self.ts(start)}",
                "cycle_start": self.ts(start), "cycle_end": self.ts(max(start, end)), "evidence": ev}

    def status(self) -> dict:
        """The on-demand report: state, counters and the last cycle."""
        last = self._snapshot(*self._last_ref) if self._last_ref is not None else {}
        return {"status": self.state, "signal_noisy": self.noisy_state, "counts": dict(self.counts),
                "pending_over_s": round(self.over_s, 3) if self.first_over is not None else 0.0,
                "earth_leakage_a": last.get("earth_leakage_a"), "earth_leakage": last.get("earth_leakage"),
                "last": last}
