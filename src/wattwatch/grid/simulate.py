"""``wattwatch grid simulate``: a scenario on a pandapower case, watched interval by interval by
the batch engine or by agents (in-process or over MQTT), with isolation and re-dispatch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.grid.config import Scenario
from wattwatch.grid.engine import BatchWatch, Step
from wattwatch.grid.network import prosumer_name
from wattwatch.grid.world import World, watch_matrix

TRANSPORTS = ("batch", "inprocess", "mqtt")


@dataclass
class GridRun:
    """What a run produced.

    samples
        One row per prosumer and sample: ``p_ref_mw``, ``p_actual_mw``, ``p_reported_mw``,
        ``p_probe_mw`` (from the neighbours' tie-line meters).
    intervals
        One row per prosumer and interval: ``d_mwh``, ``f`` (mean over watchers), ``penalty``
        (mean of the neighbours' P), ``signals``, ``watchers``, ``decision`` (``isolate`` once),
        ``isolated``.
    pairs
        One row per watcher, prosumer and interval: ``d_mwh``, ``f``, ``p``.
    isolations, dispatches
        Each isolation (who, when, votes) and each operating point (method, convergence, seconds).
    """

    scenario: Scenario
    samples: pd.DataFrame
    intervals: pd.DataFrame
    pairs: pd.DataFrame
    isolations: list[dict]
    dispatches: list[dict]
    seconds: float
    transport: str
    meta: dict = field(default_factory=dict)


def simulate(sc: Scenario, transport: str = "batch", *, broker: tuple[str, int] | None = None,
             topic: str = "wattwatch/grid", timeout_s: float = 30.0, on_progress=None,
             keep_measurements: bool = False) -> GridRun:
    """Run ``sc``. ``transport``: ``batch`` (vectorised), ``inprocess`` (one agent per prosumer,
    messages through an in-process bus), ``mqtt`` (the same agents over a broker ``(host, port)``
    under ``topic``). ``keep_measurements``: also keep every tie-line meter reading and the
    agreed references in the form ``grid monitor`` reads (``run.measurements``,
    ``run.references``, ``run.topology_toml``)."""
    from wattwatch.errors import ConfigError

    if transport not in TRANSPORTS:
        raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    t0 = time.perf_counter()
    world = World(sc)
    grid, cfg = world.grid, sc.watch
    watch = watch_matrix(grid, world.watched)
    if transport == "batch":
        engine = BatchWatch(grid, cfg, watch, sc.probe_noise_mw, sc.seed)
    else:
        from wattwatch.grid.agents import AgentWatch, InProcessBus, MqttBus

        bus = InProcessBus() if transport == "inprocess" else MqttBus(*(broker or ("127.0.0.1", 1883)), topic=topic,
                                                                        timeout_s=timeout_s)
        engine = AgentWatch(grid, cfg, watch, sc.probe_noise_mw, sc.seed, bus)
    names = np.array(grid.names())
    k = cfg.samples
    rec_s, rec_i, rec_p, rec_m, isolations = [], [], [], [], []
    isolated_mask = np.zeros(grid.n, bool)
    try:
        for z in range(world.n_intervals):
            iv = world.interval(z)
            st: Step = engine.step(iv)
            end = world.interval_end(z)
            rec_s.append((iv.ts, iv.ref_mw, iv.actual_mw, iv.reported_mw, st.probe))
            if keep_measurements:
                rec_m.append((iv.meas_mw, iv.loss_mw))
            with np.errstate(all="ignore"):
                w = st.watchers > 0
                d_mean = np.where(w, np.nansum(st.d, axis=0) / np.maximum(st.watchers, 1), np.nan)
                f_mean = np.where(w, np.nansum(st.f, axis=0) / np.maximum(st.watchers, 1), np.nan)
            rec_i.append((end, d_mean, f_mean, np.where(w, st.penalty, np.nan), st.signals, st.watchers,
                          st.isolate.copy(), isolated_mask.copy()))
            jj, ii = np.nonzero(~np.isnan(st.d))
            rec_p.append((end, jj, ii, st.d[jj, ii], st.f[jj, ii], st.p[jj, ii]))
            if st.isolate.any():
                ks = np.flatnonzero(st.isolate)
                disp = world.isolate(ks, z)
                for i in ks:
                    isolations.append({"prosumer": names[i], "bus": int(grid.buses[i]), "interval": z, "ts": end,
                                       "penalty": float(st.penalty[i]), "signals": int(st.signals[i]),
                                       "watchers": int(st.watchers[i]), "redispatch_method": disp["method"],
                                       "redispatch_converged": disp["converged"], "slack_mw_before": disp["slack_mw_before"],
                                       "slack_mw_after": disp["slack_mw"]})
                isolated_mask[ks] = True
                engine.update(watch_matrix(grid, world.watched))
            if on_progress:
                on_progress(1)
    finally:
        if transport != "batch":
            engine.close()
    samples = _samples(names, rec_s, world.watched | isolated_mask)
    intervals = _intervals(names, rec_i, world.watched | isolated_mask)
    pairs = pd.DataFrame({
        "ts": np.concatenate([np.repeat(np.datetime64(e.tz_convert(None)), len(j)) for e, j, *_ in rec_p]) if rec_p else [],
        "watcher": np.concatenate([names[j] for _, j, *_ in rec_p]) if rec_p else [],
        "prosumer": np.concatenate([names[i] for _, _, i, *_ in rec_p]) if rec_p else [],
        "d_mwh": np.concatenate([r[3] for r in rec_p]) if rec_p else [],
        "f": np.concatenate([r[4] for r in rec_p]) if rec_p else [],
        "p": np.concatenate([r[5] for r in rec_p]) if rec_p else [],
    })
    pairs["ts"] = pd.to_datetime(pairs["ts"]).dt.tz_localize("UTC")
    seconds = time.perf_counter() - t0
    meta = {"case": sc.case, "buses": grid.n, "branches": int(len(grid.branch_ends)), "slack": names[grid.slack],
            "prosumers": int((world.watched | isolated_mask).sum()), "intervals": world.n_intervals, "samples_per_interval": k,
            "sample_min": cfg.sample_min, "transport": transport}
    run = GridRun(sc, samples, intervals, pairs, isolations, world.dispatches, seconds, transport, meta)
    if keep_measurements:
        run.measurements, run.references, run.topology_toml = _monitor_inputs(grid, names, samples, rec_s, rec_m, cfg)
    return run


def _monitor_inputs(grid, names, samples, rec_s, rec_m, cfg):
    """The run's meter readings, references and topology as ``grid monitor`` reads them."""
    ts = pd.DatetimeIndex(np.concatenate([r[0].tz_convert(None).to_numpy() for r in rec_s])).tz_localize("UTC")
    meas = np.concatenate([r[0] for r in rec_m], axis=2)      # (B, 2, S)
    loss = rec_m[0][1]                                         # agreed losses of the first operating point
    nb = meas.shape[0]
    ends = grid.branch_ends
    at = np.stack([names[ends[:, 0]], names[ends[:, 1]]], axis=1)   # (B, 2)
    lines = np.array(grid.branch_names)
    m = pd.DataFrame({"ts": np.tile(ts, nb * 2), "line": np.repeat(lines, 2 * len(ts)),
                      "at": np.repeat(at.ravel(), len(ts)), "p_mw": meas.reshape(nb * 2, -1).ravel()})
    ref = samples[["ts", "prosumer", "p_ref_mw"]].copy()
    toml = ["# written by wattwatch grid simulate: the case's tie-lines", "[grid]", f'slack = "{names[grid.slack]}"', ""]
    for k, (a, b) in enumerate(ends):
        toml += ["[[line]]", f'id = "{lines[k]}"', f'from = "{names[a]}"', f'to = "{names[b]}"', f"loss_mw = {float(loss[k])!r}", ""]
    toml += ["[watch]"] + [f"{f} = {v!r}".replace("True", "true").replace("False", "false")
                           for f, v in __import__("dataclasses").asdict(cfg).items() if v is not None]
    return m, ref, "\n".join(toml) + "\n"


def _samples(names, rec, keep) -> pd.DataFrame:
    ts = pd.DatetimeIndex(np.concatenate([r[0].tz_convert(None).to_numpy() for r in rec])).tz_localize("UTC")
    cols = [np.concatenate([r[c] for r in rec], axis=1) for c in (1, 2, 3, 4)]
    idx = np.flatnonzero(keep)
    n_t = len(ts)
    return pd.DataFrame({
        "ts": np.tile(ts, len(idx)), "prosumer": np.repeat(names[idx], n_t),
        "p_ref_mw": cols[0][idx].ravel(), "p_actual_mw": cols[1][idx].ravel(),
        "p_reported_mw": cols[2][idx].ravel(), "p_probe_mw": cols[3][idx].ravel(),
    })


def _intervals(names, rec, keep) -> pd.DataFrame:
    idx = np.flatnonzero(keep)
    ts = pd.DatetimeIndex([r[0] for r in rec])
    stack = [np.stack([r[c] for r in rec], axis=1) for c in range(1, 8)]  # (N, Z)
    n_t = len(ts)
    df = pd.DataFrame({
        "ts": np.tile(ts, len(idx)), "prosumer": np.repeat(names[idx], n_t),
        "d_mwh": stack[0][idx].ravel(), "f": stack[1][idx].ravel(), "penalty": stack[2][idx].ravel(),
        "signals": stack[3][idx].ravel().astype(int), "watchers": stack[4][idx].ravel().astype(int),
        "decision": np.where(stack[5][idx].ravel(), "isolate", ""), "isolated": stack[6][idx].ravel().astype(bool),
    })
    return df
