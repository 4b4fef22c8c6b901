"""The neighbour watch over a whole grid at once (vectorised over watcher–prosumer pairs), and the
run loop shared with the agents: interval by interval, measurements -> mismatch -> F -> penalty ->
vote -> isolation and re-dispatch -> neighbour-set update."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwatch.grid import watch as W
from wattwatch.grid.config import WatchConfig
from wattwatch.grid.world import Interval, far_end_matrix


@dataclass
class Step:
    d: np.ndarray        # (N, N) d_ji: watcher j, prosumer i (MWh; NaN where j does not watch i)
    f: np.ndarray        # (N, N) F_ji
    p: np.ndarray        # (N, N) P_ji
    penalty: np.ndarray  # (N,) mean over watchers
    signals: np.ndarray  # (N,) watchers with P > C_th
    watchers: np.ndarray  # (N,) number of watchers
    isolate: np.ndarray  # (N,) bool
    probe: np.ndarray    # (N, K) probed power (without the watchers' own probing noise)


def pair_noise_rng(seed: int, watcher_bus: int, prosumer_bus: int) -> np.random.Generator:
    """The probing-error stream of one watcher about one prosumer (the same in batch and agents)."""
    return np.random.default_rng([int(seed), 1, int(watcher_bus), int(prosumer_bus)])


class BatchWatch:
    """Every pair's state in (N, N) arrays; one interval per :meth:`step`."""

    def __init__(self, grid, cfg: WatchConfig, watch: np.ndarray, probe_noise_mw: float = 0.0, seed: int = 0):
        self.grid, self.cfg = grid, cfg
        self.far, self.lossm = far_end_matrix(grid)
        n = grid.n
        self.f = np.zeros((n, n))
        self.dt = np.zeros((n, n))
        self.watch = watch.copy()
        self.noise = probe_noise_mw
        self.seed = seed
        self._rngs: dict[tuple[int, int], np.random.Generator] = {}

    def update(self, watch: np.ndarray) -> None:
        """New neighbour sets: pairs that end are forgotten, new pairs start from F = 0."""
        gone = self.watch & ~watch
        self.f[gone] = 0.0
        self.dt[gone] = 0.0
        self.watch = watch.copy()

    def step(self, iv: Interval) -> Step:
        cfg, k = self.cfg, self.cfg.samples
        nb = iv.meas_mw.shape[0]
        probe = self.far @ iv.meas_mw.reshape(2 * nb, k) + (self.lossm @ iv.loss_mw)[:, None]
        d_i = W.mismatch(probe, iv.ref_mw, cfg)[:, 0]
        d = np.broadcast_to(d_i[None, :], self.watch.shape).copy()
        if self.noise:
            buses = self.grid.buses
            for j, i in zip(*np.nonzero(self.watch)):
                key = (int(j), int(i))
                if key not in self._rngs:
                    self._rngs[key] = pair_noise_rng(self.seed, buses[j], buses[i])
                d[j, i] = W.mismatch((probe[i] + self._rngs[key].normal(0.0, self.noise, k))[None], iv.ref_mw[i][None], cfg)[0, 0]
        dt = W.dead_zone(d, cfg)
        f = W.step(self.f, self.dt, dt, cfg)
        f = np.where(self.watch, f, 0.0)
        dt = np.where(self.watch, dt, 0.0)
        self.f, self.dt = f, dt
        p = W.penalty(f, cfg)
        mean, signals, iso = W.vote(p, self.watch, cfg)
        nan = ~self.watch
        return Step(np.where(nan, np.nan, d), np.where(nan, np.nan, f), np.where(nan, np.nan, p), mean, signals,
                    self.watch.sum(axis=0), iso, probe)
