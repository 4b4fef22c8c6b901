"""Seeded waveform simulator for the edge meter: tamper faults and the loads that look like them.

Scenarios (single phase unless ``phases = 3``; 230 V, 50 Hz drifting ±0.03 Hz, 5 mA of capacitive
earth leakage and a few mA of sensor noise on every current channel, a load that steps between
random levels every ~30 s):

=======================  ===========================================================================
``normal``               the load alone
``bypass``               neutral bypass from 30 s to 100 s (the neutral reads 0 A, load 8-15 A;
                         three phase: the whole neutral)
``partial_earth_return`` 30 % of the return current goes to earth from 30 s to 100 s (three phase:
                         30 % of L1's)
``intermittent_bypass``  from 30 s on, the bypass is on for 12 s, off for 3 s, to 110 s
``leakage``              25 mA of earth leakage all the time (look-alike: must not trip)
``motor_starts``         a 4 A motor (a compressor, a pump) starts every ~20 s and runs 8 s: 6x inrush
                         with a DC offset decaying over ~0.4 s, during which the neutral CT
                         saturates and reads up to 25 % low (a ΔI of several A for ~1 s)
``led_smps``             LED / switch-mode load: 3rd 75 %, 5th 50 %, 7th 30 %, 9th 15 % of the
                         fundamental (THD ≈ 96 %); the neutral sensor's gain falls with frequency
                         (1 − 0.05·k), so the RMS ΔI passes 0.5 A on a 10 A load with no diversion
``voltage_sags``         sags to 60 % for 0.1-1 s every ~10 s and a 0.5 s interruption (10 %)
=======================  ===========================================================================

A scenario is a function of time: :meth:`Waveform.samples` gives any stretch of samples (so 24 h
never has to sit in memory), and :meth:`Waveform.cycles` gives the same stretch as per-cycle RMS
values computed from the same model, which is how 24 h of leakage is judged at a fraction of the
cost (the tests check that the two paths agree on a shorter stretch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wattwatch.edge.metrology import SINGLE, THREE, Cycles

SCENARIOS = ("normal", "bypass", "partial_earth_return", "intermittent_bypass", "leakage", "motor_starts",
             "led_smps", "voltage_sags")
FAULT_KIND = {"bypass": "neutral_bypass", "partial_earth_return": "partial_earth_return",
              "intermittent_bypass": "neutral_bypass"}
V_NOM = 230.0
DRIFT_HZ, DRIFT_PERIOD_S = 0.03, 60.0
HARM_LED = {3: 0.75, 5: 0.5, 7: 0.3, 9: 0.15}
NOISE_A = 0.003
MOTOR_RUN_S = 8.0
BASE_LEAK_A = 0.005


@dataclass
class Waveform:
    scenario: str = "normal"
    seconds: float = 120.0
    fs: float = 3200.0
    seed: int = 0
    phases: int = 1
    f0: float = 50.0
    t0: float = 1_767_225_600.0      # 2026-01-01T00:00:00Z
    events: list = field(default_factory=list)

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        if self.phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {self.phases}")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        rng = np.random.default_rng(self.seed)
        self.channels = SINGLE if self.phases == 1 else THREE
        n_seg = int(self.seconds / 10) + 8
        self._bounds = np.cumsum(rng.exponential(30.0, n_seg))
        while self._bounds[-1] < self.seconds:
            self._bounds = np.concatenate([self._bounds, self._bounds[-1] + np.cumsum(rng.exponential(30.0, n_seg))])
        lo, hi = {"bypass": (8, 15), "partial_earth_return": (8, 15), "intermittent_bypass": (8, 15),
                  "led_smps": (6, 12), "motor_starts": (1, 6)}.get(self.scenario, (0.3, 20))
        self._levels = np.exp(rng.uniform(np.log(lo), np.log(hi), (len(self._bounds) + 1, self.phases)))
        self._pf_angle = np.arccos(rng.uniform(0.85, 0.99, self.phases))
        self._gain = 1 + rng.normal(0, 0.002, 5)        # sensor gain errors (0.2 %)
        self.leak_a = 0.025 if self.scenario == "leakage" else BASE_LEAK_A
        self.starts = np.empty(0)
        self.sags = np.empty((0, 3))
        if self.scenario == "motor_starts":
            self.starts = np.cumsum(rng.uniform(12, 28, int(self.seconds / 12) + 2))
            self.starts = self.starts[self.starts < self.seconds - 1]
            self.events = [{"kind": "motor_start", "start_s": float(s), "end_s": float(s) + 2.0, "expect_alert": False}
                           for s in self.starts]
        elif self.scenario == "voltage_sags":
            t = np.cumsum(rng.uniform(6, 14, int(self.seconds / 6) + 2))
            t = t[t < self.seconds - 1]
            dur = rng.uniform(0.1, 1.0, len(t))
            depth = np.full(len(t), 0.6)
            if len(t):
                depth[len(t) // 2], dur[len(t) // 2] = 0.1, 0.5
            self.sags = np.column_stack([t, t + dur, depth])
            self.events = [{"kind": "voltage_sag", "start_s": float(a), "end_s": float(b), "expect_alert": False}
                           for a, b, _ in self.sags]
        elif self.scenario in FAULT_KIND:
            end = min(self.seconds, 110.0 if self.scenario == "intermittent_bypass" else 100.0)
            self.fault = (min(30.0, self.seconds / 4), end)
            self.events = [{"kind": FAULT_KIND[self.scenario], "start_s": self.fault[0], "end_s": end,
                            "expect_alert": True}]
        elif self.scenario in ("leakage", "led_smps"):
            self.events = [{"kind": self.scenario, "start_s": 0.0, "end_s": self.seconds, "expect_alert": False}]

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.fs))

    # ------------------------------------------------------------------------ model pieces

    def _theta(self, t):
        return 2 * np.pi * self.f0 * t - DRIFT_HZ * DRIFT_PERIOD_S * np.cos(2 * np.pi * t / DRIFT_PERIOD_S)

    def _level(self, t):
        return self._levels[np.searchsorted(self._bounds, t)]          # (n, phases)

    def _vscale(self, t):
        s = np.ones_like(t)
        if not len(t) or not len(self.sags):
            return s
        # Only the sags that overlap this stretch (they are in time order and do not overlap), so
        # a stretch costs the same an hour or a day into the scenario.
        lo = np.searchsorted(self.sags[:, 1], t[0], side="right")
        hi = np.searchsorted(self.sags[:, 0], t[-1], side="right")
        for a, b, d in self.sags[lo:hi]:
            s[(t >= a) & (t < b)] = d
        return s

    def _diverted(self, t):
        """Share of the return current that does not come back through the neutral."""
        out = np.zeros_like(t)
        if self.scenario not in FAULT_KIND:
            return out
        a, b = self.fault
        on = (t >= a) & (t < b)
        if self.scenario == "intermittent_bypass":
            on &= ((t - a) % 15.0) < 12.0
        out[on] = 0.3 if self.scenario == "partial_earth_return" else 1.0
        return out

    def _motor(self, t, th):
        """(motor current as measured by the phase CT, the part the neutral CT misses)."""
        m = np.zeros_like(t)
        miss = np.zeros_like(t)
        if not len(t):
            return m, miss
        # Only the motor runs that overlap this stretch (see _vscale).
        lo = np.searchsorted(self.starts, t[0] - MOTOR_RUN_S, side="right")
        hi = np.searchsorted(self.starts, t[-1], side="right")
        for s in self.starts[lo:hi]:
            on = t >= s
            if not on.any():
                continue
            u = np.where(on, t - s, 0.0)
            on &= u < MOTOR_RUN_S
            env = 4.0 * (1 + 5.0 * np.exp(-u / 0.4))
            cur = np.sqrt(2) * env * np.sin(th - 0.6435) + np.sqrt(2) * 20.0 * np.exp(-u / 0.1) * np.sin(0.6435)
            cur = np.where(on, cur, 0.0)
            m += cur
            miss += np.where(on, cur * 0.25 * np.exp(-u / 0.3), 0.0)
        return m, miss

    # ------------------------------------------------------------------------ samples

    def samples(self, a: int = 0, b: int | None = None, rng_stream: int = 0) -> np.ndarray:
        """Samples ``a`` .. ``b`` (sample indices) as (n × channels); sensor noise is seeded by the
        stretch, so the same stretch always gives the same samples."""
        b = self.n_samples if b is None else min(b, self.n_samples)
        t = np.arange(a, b) / self.fs
        rng = np.random.default_rng([self.seed, a, rng_stream])
        th = self._theta(t)
        vs = self._vscale(t)
        v = V_NOM * np.sqrt(2) * np.sin(th) * vs * self._gain[0] + rng.normal(0, 0.2, len(t))
        lvl = self._level(t) * vs[:, None]
        div = self._diverted(t)
        cols = [v]
        i_sum = np.zeros_like(t)
        i_n = np.zeros_like(t)
        for p in range(self.phases):
            shift = -2 * np.pi / 3 * p
            phi = self._pf_angle[p]
            if self.scenario == "led_smps":
                norm = np.sqrt(1 + sum(h * h for h in HARM_LED.values()))
                fund = np.sqrt(2) * lvl[:, p] / norm
                load = fund * np.sin(th + shift - phi)
                seen_n = load.copy()
                for k, h in HARM_LED.items():
                    comp = fund * h * np.sin(k * (th + shift) - 0.3 * k)
                    load += comp
                    seen_n += comp * (1 - 0.05 * k)
            else:
                load = np.sqrt(2) * lvl[:, p] * np.sin(th + shift - phi)
                seen_n = load.copy()
            if p == 0:
                m, miss = self._motor(t, th)
                load, seen_n = load + m, seen_n + m - miss
            leak = np.sqrt(2) * self.leak_a * np.sin(th + shift + np.pi / 2) * vs if p == 0 else 0.0
            cols.append(load + leak)
            # The diverted share returns by earth, not by the neutral: a bypassed neutral carries
            # nothing of any phase; a partial earth return (three phase) is a share of L1's.
            i_n += seen_n * (1 - div) if p == 0 or self.scenario != "partial_earth_return" else seen_n
            i_sum += load + leak
        for k in range(1, len(cols)):
            cols[k] = cols[k] * self._gain[k] + rng.normal(0, NOISE_A, len(t))
        cols.append(i_n * self._gain[4] + rng.normal(0, NOISE_A, len(t)))
        return np.column_stack(cols)

    def blocks(self, block_s: float = 1.0):
        """The whole scenario as consecutive blocks of samples."""
        n = max(1, int(round(block_s * self.fs)))
        for a in range(0, self.n_samples, n):
            yield self.samples(a, a + n)

    # ------------------------------------------------------------------------ RMS per cycle

    def cycles(self, c0: int, c1: int) -> Cycles:
        """Cycles ``c0`` .. ``c1`` as RMS values from the same model, without samples (single phase
        ``normal``, ``leakage``; nominal-length cycles, as :class:`~wattwatch.edge.metrology.
        Metrology` cuts them)."""
        if self.phases != 1 or self.scenario not in ("normal", "leakage"):
            raise ValueError("the RMS-per-cycle path models single-phase normal and leakage scenarios")
        n = int(round(self.fs / self.f0))
        idx = np.arange(c0, c1)
        tm = (idx * n + n / 2) / self.fs                                  # cycle midpoints
        lvl = self._level(tm)[:, 0]
        phi = self._pf_angle[0]
        load = lvl * np.exp(-1j * phi)
        leak = self.leak_a * np.exp(1j * np.pi / 2)
        il_ph = (load + leak) * self._gain[1]
        in_ph = load * self._gain[4]
        noise2 = NOISE_A ** 2
        il = np.sqrt(np.abs(il_ph) ** 2 + noise2)
        i_n = np.sqrt(np.abs(in_ph) ** 2 + noise2)
        v = np.full(len(idx), V_NOM * self._gain[0])
        res = np.sqrt(np.abs(il_ph - in_ph) ** 2 + 2 * noise2)
        # Broadband noise over the harmonic bins 2..N/2 of a one-cycle window.
        thd = np.sqrt(noise2 * (min(n // 2, 41) - 2) / (n / 2)) / np.abs(il_ph) * 100
        freq = self.f0 + DRIFT_HZ * np.sin(2 * np.pi * tm / DRIFT_PERIOD_S)
        nan = np.full(len(idx), np.nan)
        return Cycles(index=idx, v=v, i_l=il, i_ph=il[:, None], i_n=i_n, expected=il, delta=np.abs(il - i_n),
                      delta_fund=np.abs(np.abs(il_ph) - np.abs(in_ph)), residual=res, thd=thd, h3=nan, h5=nan,
                      h7=nan, freq=freq, residual_fund=np.abs(il_ph - in_ph))
