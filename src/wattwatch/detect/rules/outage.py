"""Supply outage: voltage lost on every phase. Information, and the reason current-based rules
are blanked for its span (no supply, no load, nothing to judge), and the thermal rule for its span
and the device's cooling lag around it (no supply, no heat source: a temperature above what the
vanished load predicts is the heat stored before the outage, released with the enclosure's own lag,
which the thermal model's single time constant may not follow).

A mains-powered meter cannot report without supply: it sends its last reading with the voltage
gone ("last gasp") and then nothing until the supply is back. The silence that directly follows a
reading with the supply lost (a gap of more than 1.5 cadences) is the outage continuing, not lost
packets: the first reading after it belongs to the outage (its span ends there, whether that
reading shows the voltage back or still lost; one alert however long the silence:
``bridge_gaps``), the evidence says how long the meter was silent (``silent_after_supply_loss_h``),
and packet_loss counts no reading lost in that gap (the same test, ``_common.supply_lost``). A
meter that reports the voltage back and then falls silent lost packets; so, as far as its
readings say, did one silent before a reading that shows the supply lost (it was heard with
supply last; q64).

A logger frozen on an outage's reading (issue 14, fz2) sends it again bit for bit, its temperature too.
On a meter whose temperature moved between nearly all consecutive readings while profiled
(``temp_moves``; ``_common.temp_moving``: a learned cadence of 4 min or coarser, ``at_cadence``) a reading with the supply
lost that repeats the one before it, the temperature and the phase channels bit for bit, tells nothing
new about the supply: it is not judged (NaN), and it explains what the outage's readings explain
(no load, no heat to judge: ``Explains(span="reading", extra="repeated")``). A run of them (the freeze,
which ``frozen_readings`` reports from its first repeat) ends the outage at its last reading with news; a lone repeat
inside a real outage (a fine sensor repeats ~1-2 % of its readings) is bridged like any reading that
cannot be judged (two in a row are not, at 15 min and coarser: the outage is then two alerts). A repeat after a
silence (a packet lost inside the freeze), the temperature read on both sides, is no news either: not the outage's
reading after a silence (sw, rot). The test
reads the reading before (``lookback_n`` 1, as for a silence) and the temperature: no reach beyond what
the outage had, one channel more (a look-back counting the repeats here, or ``frozen_readings``
blanking the outage, would lengthen the reach of everything the outage blanks: loose_ct's at hourly
cadence beyond the stream's fast tier; docs/quality-log.md fz2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import (PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, Scored,
                                   rnd)
from wattwatch.detect.frame import meter_names
from wattwatch.detect.rules._common import (FALLBACK_NOMINAL_V, SUPPLY_LOST_FRACTION, TEMP_MOVING_SHARE,
                                            after_supply_loss, max_voltage, nominal_voltage, stale_pairs, supply_lost,
                                            temp_moves, temp_moving, unchanged)

# How long after the supply returns the temperature may still carry the cooling the outage began
# (the thermal rule's longest time constant, 2 h); padded either side of the outage's span.
COOLING_LAG_S = 2 * 3600.0


@dataclass(frozen=True)
class SupplyOutageConfig(DetectorConfig):
    """``lost_fraction``: a phase is dead below this share of the meter's nominal voltage."""

    lost_fraction: float = SUPPLY_LOST_FRACTION
    fallback_nominal_v: float = FALLBACK_NOMINAL_V
    # A repeated reading (the temperature too) is not judged on meters whose temperature moved between at
    # least this share of consecutive profiled readings (``temp_moves``).
    temp_moving_share: float = TEMP_MOVING_SHARE
    # A silence after a supply loss has no reading in it: its two edges are one outage however long.
    post: PostRule = PostRule(min_duration_s=0.0, min_readings=1, merge_gap_s=600.0, bridge_gaps=True)


class SupplyOutage(Detector):
    name = "supply_outage"
    code = "INFO_SUPPLY_OUTAGE"
    config_cls = SupplyOutageConfig
    requires = ("v_l1_v",)
    # max_voltage and nominal_voltage: the phase arrays; a repeated reading: the temperature
    reads_also = (*PHASE_CHANNELS, "temp_c")
    # No supply, no load: current-based rules have nothing to judge and a consumption "drop" is
    # the outage itself.
    explains = (Explains(("current", "consumption"), span="hot"),
                Explains(("temperature",), span="span", pad_s=COOLING_LAG_S),
                # A repeated reading with the supply lost (not judged here: see the module) is no
                # evidence of load or heat either, wherever it lies (inside an outage, at its edge, the
                # run-up of a freeze before frozen_readings takes it): one reading back, no horizon.
                Explains(("current", "consumption", "temperature"), span="reading", extra="repeated"))

    # The reading after a silence that followed a supply loss is the outage's; a reading repeating the
    # one before it is not judged: one reading back.
    lookback_n = 1
    state_version = 2  # 2: + temp_moves (a version-1 state would read a logger frozen on an outage as the outage)

    def _fit(self, df: pd.DataFrame) -> dict:
        n_seg = int(df["_seg"].max()) + 1
        nom = nominal_voltage(df, n_seg)
        moves = temp_moves(df, n_seg)
        return {m: {"nominal_v": v, "temp_moves": float(t)} for m, v, t in zip(meter_names(df), nom, moves)}

    def _nominal(self, df: pd.DataFrame) -> np.ndarray:
        nom = self._param(df, "nominal_v")
        return np.where(np.isfinite(nom), nom, self.config.fallback_nominal_v)

    def _score(self, df: pd.DataFrame) -> Scored:
        vmax = max_voltage(df)
        lost = supply_lost(df, self._nominal(df), self.config.lost_fraction)
        # A silence is the outage's only after a loss judged against a learned nominal (rev64: see supply_lost).
        known = np.isfinite(self._param(df, "nominal_v"))[df["_seg"].to_numpy()]
        after = after_supply_loss(df, lost & known, self._param(df, "cadence_s"))
        score = np.where(np.isfinite(vmax), lost.astype(float), np.nan)
        rep = self._repeated(df, lost)
        score[rep] = np.nan
        # A reading after a silence that repeats the one before it bit for bit, the temperature read on
        # both sides, is no news either: a logger frozen on an outage's reading that lost a packet (issue
        # 14, sw: fleet 1663 at 5 min, M-00118). The silence is then inside the freeze, not the outage's;
        # a repeat with the temperature missing on a side tells nothing across a silence (a real outage
        # repeats its zeros too) and stays the outage's.
        if (after & rep).any():
            x = df["temp_c"].to_numpy(float)
            ok = np.isfinite(x)
            after = after.copy()
            after[1:] &= ~(rep[1:] & ok[1:] & ok[:-1])
        return Scored(np.where(after, 1.0, score), after)

    def repeated(self, df: pd.DataFrame, ctx=None) -> np.ndarray:
        """Per reading: not judged as a repeat of the one before with the supply lost (:meth:`_repeated`)."""
        return self._repeated(df, supply_lost(df, self._nominal(df), self.config.lost_fraction))

    def _repeated(self, df: pd.DataFrame, lost: np.ndarray, moves: np.ndarray | None = None,
                  cad: np.ndarray | None = None) -> np.ndarray:
        """Per reading: the supply lost on it and the one before, which it repeats bit for bit (the
        temperature, the phase channels present on both), on a meter whose temperature moves."""
        out = np.zeros(len(df), bool)
        if "temp_c" not in df.columns or len(df) < 2:
            return out
        # (``moves``, ``cad``: the learned values per segment code, if ``df`` is a slice of the frame)
        cad = self._param(df, "cadence_s") if cad is None else cad
        moves = self._param(df, "temp_moves") if moves is None else moves
        # The pair test frozen_readings counts a freeze's repeats with (_common.stale_pairs: one meter,
        # about the learned cadence apart, a moving temperature repeating or missing on one side) ...
        rep, _ = stale_pairs(df, cad, temp_moving(moves, cad, self.config.temp_moving_share), lost[1:] & lost[:-1])
        # ... and the phase channels present on both repeating (_common.unchanged, as frozen_readings)
        for c in PHASE_CHANNELS:
            if rep.any() and c in df.columns:
                rep &= unchanged(df[c].to_numpy(float))
        out[1:] = rep
        return out

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        t = df["_t"].to_numpy()
        minutes = (t[rows].max() - t[rows].min()) / 60
        after = np.zeros(len(rows), bool) if ctx is None else np.asarray(ctx, bool)[rows]
        v = df["v_l1_v"].to_numpy()[rows[~after]]   # the readings that show the supply lost
        # (the readings with the supply lost in its span: a repeated one inside, not judged, counts too; rfz2)
        # (on the span's rows only, the meter's learned values looked up over ``df``'s segment codes)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        sub = df.iloc[lo:hi]
        rep = int(self._repeated(sub, supply_lost(sub, self._nominal(df), self.config.lost_fraction),
                                 self._param(df, "temp_moves"), self._param(df, "cadence_s")).sum())
        ev = {"duration_min": rnd(minutes, 1), "v_l1_v_max": rnd(np.nanmax(v), 1) if np.isfinite(v).any() else None,
              "readings": len(rows) + rep}
        if not after.any():
            return Finding("info", f"supply lost on all phases for {minutes:.0f} min (current-based rules paused)",
                           ev, "none needed for the meter; check the feeder if outages repeat")
        silent_h = float(np.sum(t[rows[after]] - t[rows[after] - 1])) / 3600
        still = bool(supply_lost(df, self._nominal(df), self.config.lost_fraction)[rows[-1]])
        ev.update(silent_after_supply_loss_h=rnd(silent_h, 2), supply_back=not still)
        if still:   # the last reading still shows it: the outage lasted the whole span at least
            msg = (f"supply lost on all phases for {minutes:.0f} min, the meter silent for {silent_h:.1f} h of it "
                   "(a meter without supply cannot report; current-based rules paused)")
        else:
            msg = (f"supply lost on all phases, then no readings for {silent_h:.1f} h (a meter without supply cannot "
                   f"report) until one with the supply back: an outage of up to {minutes:.0f} min (current-based "
                   "rules paused)")
        return Finding("info", msg, ev, "none needed for the meter; check the feeder if outages repeat")
