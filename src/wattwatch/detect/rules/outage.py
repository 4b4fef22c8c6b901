"""Supply outage: voltage lost on every phase. Information, and the reason current-based rules
are blanked for its span (no supply, no load, nothing to judge), and the thermal rule for its span
and the device's cooling lag around it (no supply, no heat source: a temperature above what the
vanished load predicts is the heat stored before the outage, released with the enclosure's own lag,
which the thermal model's single time constant may not follow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, rnd
from wattwatch.detect.frame import meter_names
from wattwatch.detect.rules._common import max_voltage, nominal_voltage

# How long after the supply returns the temperature may still carry the cooling the outage began
# (the thermal rule's longest time constant, 2 h); padded either side of the outage's span.
COOLING_LAG_S = 2 * 3600.0


@dataclass(frozen=True)
class SupplyOutageConfig(DetectorConfig):
    """``lost_fraction``: a phase is dead below this share of the meter's nominal voltage."""

    lost_fraction: float = 0.1
    fallback_nominal_v: float = 230.0
    post: PostRule = PostRule(min_duration_s=0.0, min_readings=1, merge_gap_s=600.0)


class SupplyOutage(Detector):
    name = "supply_outage"
    code = "INFO_SUPPLY_OUTAGE"
    config_cls = SupplyOutageConfig
    requires = ("v_l1_v",)
    reads_also = PHASE_CHANNELS  # max_voltage and nominal_voltage: the phase arrays
    # No supply, no load: current-based rules have nothing to judge and a consumption "drop" is
    # the outage itself.
    explains = (Explains(("current", "consumption"), span="hot"),
                Explains(("temperature",), span="span", pad_s=COOLING_LAG_S))

    def _fit(self, df: pd.DataFrame) -> dict:
        n_seg = int(df["_seg"].max()) + 1
        nom = nominal_voltage(df, n_seg)
        return {m: {"nominal_v": v} for m, v in zip(meter_names(df), nom)}

    def _nominal(self, df: pd.DataFrame) -> np.ndarray:
        nom = self._param(df, "nominal_v")
        return np.where(np.isfinite(nom), nom, self.config.fallback_nominal_v)

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        vmax = max_voltage(df)
        limit = self.config.lost_fraction * self._nominal(df)[df["_seg"].to_numpy()]
        return np.where(np.isfinite(vmax), (vmax < limit).astype(float), np.nan)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        t = df["_t"].to_numpy()[rows]
        minutes = (t.max() - t.min()) / 60
        v = df["v_l1_v"].to_numpy()[rows]
        return Finding("info", f"supply lost on all phases for {minutes:.0f} min (current-based rules paused)",
                       {"duration_min": rnd(minutes, 1), "v_l1_v_max": rnd(np.nanmax(v), 1), "readings": len(rows)},
                       "none needed for the meter; check the feeder if outages repeat")
