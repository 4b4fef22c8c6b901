"""The simulated grid: what prosumers actually do and what the tie-line meters read.

Per interval of K samples it gives each prosumer's agreed reference, its actual net power, what it
reports about itself, and every tie-line end's measured flow (power flow + seeded noise). The
neighbour watch (batch or agents) sees only the references, the measurements and the agreed
branch losses; it never sees ``actual``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.errors import ConfigError
from wattwatch.grid.config import Scenario
from wattwatch.grid.network import Dispatch, Grid, flows, load_case, prosumer_name


@dataclass
class Interval:
    z: int
    ts: pd.DatetimeIndex          # sample times
    ref_mw: np.ndarray            # (N, K) agreed net power (generation − load)
    actual_mw: np.ndarray         # (N, K) what the bus really injects
    reported_mw: np.ndarray       # (N, K) what the prosumer says it injects
    meas_mw: np.ndarray           # (B, 2, K) measured flow out of each end's bus into the branch
    loss_mw: np.ndarray           # (B,) agreed branch losses of the operating point


class World:
    def __init__(self, sc: Scenario, grid: Grid | None = None):
        self.sc = sc
        self.cfg = sc.watch
        self.grid = grid if grid is not None else load_case(sc.case)
        g = self.grid
        n = g.n
        names = g.names()
        self.watched = np.zeros(n, bool)
        if sc.prosumers:
            bad = [b for b in sc.prosumers if b not in set(int(x) for x in g.buses)]
            if bad:
                raise ConfigError(f"prosumers: bus(es) {bad} not in {sc.case}")
            pos = {int(b): k for k, b in enumerate(g.buses)}
            self.watched[[pos[b] for b in sc.prosumers]] = True
        else:
            self.watched[:] = True
        self.watched[g.slack] = False
        for dv in sc.deviations:
            if dv.prosumer not in names:
                raise ConfigError(f"deviation prosumer {dv.prosumer!r} is not a bus of {sc.case} (P1..P{n})")
            if names.index(dv.prosumer) == g.slack:
                raise ConfigError(f"deviation prosumer {dv.prosumer} is the slack bus (it balances the grid, not watched)")
        k = self.cfg.samples
        self.sample_min = self.cfg.sample_min
        self.n_intervals = int(round(sc.hours * 60.0 / self.cfg.interval_min))
        if self.n_intervals < 1:
            raise ConfigError("hours is shorter than one interval")
        self.period_intervals = max(1, int(round(sc.dispatch_hours * 60.0 / self.cfg.interval_min)))
        self.start = pd.Timestamp(sc.start)
        self.start = self.start.tz_localize("UTC") if self.start.tzinfo is None else self.start.tz_convert("UTC")
        total = self.n_intervals * k
        self.minutes = np.arange(total) * self.sample_min
        self.rng = np.random.default_rng([sc.seed, 0])
        # Per-bus base load (MW) of the case, to scale PV and household variation.
        net = g.net
        base = np.zeros(n)
        pos = {int(b): i for i, b in enumerate(g.buses)}
        for b, p in zip(net.load.bus, net.load.p_mw):
            base[pos[int(b)]] += p
        self.base_load = base
        if sc.profile == "real":
            from wattwatch.grid.profiles import prosumer_profiles

            tod = self.start.hour * 60 + self.start.minute + self.minutes
            size = np.where(base > 0, base, base[base > 0].mean() if (base > 0).any() else 1.0)
            mix = np.clip(np.ceil(size / sc.profile_mix_mw), 1, 100).astype(int)
            pv, load = prosumer_profiles(n, tod, seed=sc.seed, mix=mix)
            self.pv_mw = sc.pv_share * size[:, None] * pv * self.watched[:, None]
            self.load_scale = 1.0 + sc.load_share * (load - 1.0) * self.watched[:, None]
        else:
            self.pv_mw = None
            self.load_scale = None
        self.dispatches: list[dict] = []
        self.dispatch: Dispatch | None = None
        self._period = -1

    # ------------------------------------------------------------------ references
    def _period_means(self, period: int):
        k = self.cfg.samples
        total = self.n_intervals * k
        a = min(period * self.period_intervals * k, total - 1)
        b = min(total, a + self.period_intervals * k)
        if self.pv_mw is None:
            return None, None, a, b
        return self.load_scale[:, a:b].mean(axis=1), self.pv_mw[:, a:b].mean(axis=1), a, b

    def redispatch(self, z: int, why: str) -> Dispatch:
        period = z // self.period_intervals
        ls, pv, _, _ = self._period_means(period)
        if self.pv_mw is not None:
            self.grid.set_profile(ls, pv)
        d = self.grid.dispatch()
        slack_before = None if self.dispatch is None else float(self.dispatch.injection_mw[self.grid.slack])
        self.dispatches.append({"interval": z, "ts": self.interval_end(z - 1), "why": why, "method": d.method,
                                "converged": d.converged, "seconds": round(d.seconds, 3), "note": d.note,
                                "slack_mw": float(d.injection_mw[self.grid.slack]) if d.converged else None,
                                "slack_mw_before": slack_before, "cost": d.cost,
                                "isolated": sorted(prosumer_name(self.grid.buses[i]) for i in self.grid.isolated)})
        if not d.converged:
            if self.dispatch is None:
                raise ConfigError(f"{self.sc.case}: no operating point: {d.note or 'power flow did not converge'}")
            # No new AC point: keep the last one for everybody else and let the slack take the
            # balance of what the isolation removed (linear flows); reported in dispatches.
            prev = self.dispatch
            inj = prev.injection_mw.copy()
            iso = sorted(self.grid.isolated)
            inj[iso] = 0.0
            inj[self.grid.slack] += prev.injection_mw[iso].sum()
            ends = flows(self.grid, prev, inj[:, None])[:, :, 0]
            self.dispatch = Dispatch("previous+slack", False, d.seconds, inj, ends, prev.loss_mw.copy(), note=d.note)
            self.dispatches[-1].update(method="previous+slack", slack_mw=float(inj[self.grid.slack]),
                                       note=(d.note + "; " if d.note else "") + "kept the last operating point, the slack "
                                       "takes the balance")
            return self.dispatch
        self.dispatch = d
        return d

    def interval_end(self, z: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(minutes=(z + 1) * self.cfg.interval_min)

    def isolate(self, ks, z: int) -> dict:
        for k in ks:
            self.grid.isolate(int(k))
        self.watched[list(ks)] = False
        self.redispatch(z + 1, "isolation of " + ", ".join(prosumer_name(self.grid.buses[k]) for k in ks))
        return self.dispatches[-1]

    # ------------------------------------------------------------------ one interval
    def interval(self, z: int) -> Interval:
        k = self.cfg.samples
        if z // self.period_intervals != self._period:
            self._period = z // self.period_intervals
            self.redispatch(z, "schedule" if z else "start")
        d = self.dispatch
        g = self.grid
        a, b = z * k, (z + 1) * k
        minutes = self.minutes[a:b]
        ts = self.start + pd.to_timedelta(minutes, unit="min")
        ref = np.repeat(d.injection_mw[:, None], k, axis=1)
        natural = ref.copy()
        if self.pv_mw is not None:
            ls, pv, _, _ = self._period_means(self._period)
            natural += (self.pv_mw[:, a:b] - pv[:, None]) - self.base_load[:, None] * (self.load_scale[:, a:b] - ls[:, None])
        iso = sorted(g.isolated)
        natural[iso] = ref[iso]
        dev = np.zeros_like(ref)
        fdi = np.zeros(g.n, bool)
        names = g.names()
        for dv in self.sc.deviations:
            i = names.index(dv.prosumer)
            if i in g.isolated:
                continue
            end = np.inf if dv.end_min is None else dv.end_min
            on = (minutes >= dv.start_min) & (minutes < end)
            dev[i] += dv.delta_mw * on
            fdi[i] |= dv.kind == "fdi" and bool(on.any())
        actual = natural + dev
        reported = np.where(fdi[:, None], ref, actual)
        true_flow = flows(g, d, actual)
        meas = true_flow + self.rng.normal(0.0, self.sc.line_noise_mw, true_flow.shape) if self.sc.line_noise_mw else true_flow
        # A false-data-injecting prosumer also makes its own meters add up to its agreed value; the
        # far ends of its tie-lines are its neighbours' meters, which it does not control.
        for i in np.flatnonzero(fdi):
            own = [(bb, e) for bb, e in g.incident()[i]]
            shift = (actual[i] - reported[i]) / max(len(own), 1)
            for bb, e in own:
                meas[bb, e] -= shift
        return Interval(z, ts, ref, actual, reported, meas, d.loss_mw.copy())


def far_end_matrix(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2B) and (N, B): p_probe_i = −Σ far-end flows + Σ agreed losses of i's tie-lines, i.e.
    ``far @ meas.reshape(2B, K) + loss_m @ loss[:, None]``."""
    n, nb = grid.n, len(grid.branch_ends)
    far = np.zeros((n, 2 * nb))
    loss = np.zeros((n, nb))
    for i, inc in enumerate(grid.incident()):
        for b, e in inc:
            far[i, 2 * b + (1 - e)] -= 1.0
            loss[i, b] += 1.0
    return far, loss


def watch_matrix(grid: Grid, watched: np.ndarray) -> np.ndarray:
    """``w[j, i]``: j watches i. Neighbours are adjacent buses; an isolated prosumer's bus is a
    passive junction, so the buses around it become each other's neighbours (the neighbour-set
    update after an isolation). Isolated prosumers neither watch nor are watched."""
    n = grid.n
    adj = np.zeros((n, n), bool)
    a, b = grid.branch_ends[:, 0], grid.branch_ends[:, 1]
    adj[a, b] = adj[b, a] = True
    np.fill_diagonal(adj, False)
    iso = np.zeros(n, bool)
    iso[list(grid.isolated)] = True
    # Contract isolated junctions: reachability through chains of isolated buses.
    reach = adj.copy()
    if iso.any():
        through = adj[:, iso]
        for _ in range(int(iso.sum())):
            # j -> isolated x -> i
            new = reach | ((reach[:, iso].astype(int) @ adj[iso].astype(int)) > 0)
            if (new == reach).all():
                break
            reach = new
        del through
    np.fill_diagonal(reach, False)
    active = ~iso
    return reach & active[:, None] & (watched & active)[None, :]
