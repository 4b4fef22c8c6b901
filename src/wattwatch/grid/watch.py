"""The neighbour-watch model of SPEC §5, vectorised over watcher–prosumer pairs.

For each pair (neighbour j watching prosumer i) and interval z of K samples over T minutes:

    d_ij(z)  = (T/K) · Σ_k (p_probe_ij(k) − p_ref_i(k))                     [MWh with T in hours]
    d̃        = 0 if |d| ≤ δ else d
    u        = 0                                      if d̃(z) = 0
             = κ · (|d̃(z)| − |d̃(z−1)|) / d_th          if |d̃(z) − d̃(z−1)| > tol (changing)
             = |d̃(z)| / d_th                          otherwise (persisting; d̃/d_th when signed)
    F_ij(z)  = λ · F_ij(z−1) + u
    P_ij(z)  = exp(β · max(F_ij, 0)) − 1
    P_i(z)   = mean over the neighbours j of P_ij(z)
    isolate i when more than ρ of its neighbours have P_ij > C_th

F is a recursion in z; every function here works on arrays of any shape (pairs, prosumers).
"""

from __future__ import annotations

import numpy as np

from wattwatch.grid.config import WatchConfig


def mismatch(probe_mw: np.ndarray, ref_mw: np.ndarray, cfg: WatchConfig) -> np.ndarray:
    """d per interval: ``probe_mw`` and ``ref_mw`` of shape (..., Z·K) -> (..., Z) in MWh."""
    diff = np.asarray(probe_mw, float) - np.asarray(ref_mw, float)
    z = diff.shape[-1] // cfg.samples
    if z * cfg.samples != diff.shape[-1]:
        raise ValueError(f"{diff.shape[-1]} samples are not whole intervals of {cfg.samples}")
    return diff.reshape(*diff.shape[:-1], z, cfg.samples).sum(axis=-1) * (cfg.interval_min / 60.0 / cfg.samples)


def dead_zone(d: np.ndarray, cfg: WatchConfig) -> np.ndarray:
    return np.where(np.abs(d) <= cfg.delta_mwh, 0.0, d)


def drive(dt: np.ndarray, dt_prev: np.ndarray, cfg: WatchConfig) -> np.ndarray:
    """u(z) from d̃(z) and d̃(z−1)."""
    changing = np.abs(dt - dt_prev) > cfg.tol_mwh
    persist = (dt if cfg.signed_persistence else np.abs(dt)) / cfg.d_th_mwh
    rate = cfg.kappa * (np.abs(dt) - np.abs(dt_prev)) / cfg.d_th_mwh
    return np.where(dt == 0.0, 0.0, np.where(changing, rate, persist))


def step(f_prev: np.ndarray, dt_prev: np.ndarray, dt: np.ndarray, cfg: WatchConfig) -> np.ndarray:
    """F(z) = λ·F(z−1) + u(z)."""
    return cfg.lam * f_prev + drive(dt, dt_prev, cfg)


def penalty(f: np.ndarray, cfg: WatchConfig) -> np.ndarray:
    """P = exp(β·max(F, 0)) − 1 (0 in normal operation); β·F is capped at 700 so that a huge
    anomaly gives a huge finite price (exp(700) ≈ 1e304), not infinity."""
    return np.expm1(np.minimum(cfg.beta * np.maximum(f, 0.0), 700.0))


def run(d: np.ndarray, cfg: WatchConfig) -> tuple[np.ndarray, np.ndarray]:
    """F and P for mismatches ``d`` of shape (..., Z), starting from F = 0, d̃ = 0."""
    dt = dead_zone(np.asarray(d, float), cfg)
    f = np.zeros(dt.shape)
    prev_f = np.zeros(dt.shape[:-1])
    prev_dt = np.zeros(dt.shape[:-1])
    for z in range(dt.shape[-1]):
        prev_f = step(prev_f, prev_dt, dt[..., z], cfg)
        prev_dt = dt[..., z]
        f[..., z] = prev_f
    return f, penalty(f, cfg)


def vote(p_pairs: np.ndarray, watch: np.ndarray, cfg: WatchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The utility's decision from the neighbours' penalties.

    ``p_pairs[j, i]`` is P_ij and ``watch[j, i]`` whether j watches i. Returns (penalty of each
    prosumer = mean over its neighbours, number of neighbours signalling, isolate?)."""
    n_watch = watch.sum(axis=0)
    p = np.where(watch, p_pairs, 0.0)
    mean = np.divide(p.sum(axis=0), n_watch, out=np.zeros(p.shape[1]), where=n_watch > 0)
    signals = (watch & (p_pairs > cfg.c_th)).sum(axis=0)
    isolate = (n_watch > 0) & (signals > cfg.rho * n_watch)
    return mean, signals, isolate
