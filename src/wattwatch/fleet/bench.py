"""The fleet-scale benchmark: n PODs x one month through ``wattwatch fleet --engine spark``.

:func:`make_pods` writes a seeded POD fleet to Parquet in chunks of PODs, vectorised with numpy
(no Python per reading), in canonical columns plus ``panel_id`` and ``town``; :func:`run_pods`
runs the fleet features on Spark over it and measures wall time, peak memory of this process
tree (the Python driver and the Spark JVM it started, sampled by psutil) and rows/s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

CHUNK_PODS = 5_000
PODS_PER_PANEL = 20
PANELS_PER_TOWN = 50


def make_pods(n_pods: int, days: int = 30, cadence_s: int = 3600, *, out: str | Path, seed: int = 0,
              start: str = "2025-01-01") -> dict:
    """Write ``n_pods`` PODs x ``days`` at ``cadence_s`` to ``out`` (a folder of Parquet parts).

    Each POD has a base load (log-normal), a public-lighting-like night profile or a daytime
    profile, three phases with its own shares, a power factor and 2 % noise; ids ``POD0000001``,
    panels of 20 PODs, towns of 50 panels. Returns rows, files, bytes and seconds.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    steps = int(days * 86400 // cadence_s)
    t0 = np.datetime64(pd.Timestamp(start, tz="UTC").tz_localize(None), "us")
    ts = t0 + np.arange(steps, dtype=np.int64) * np.timedelta64(cadence_s, "s").astype("timedelta64[us]")
    hour = (ts.astype("datetime64[h]").astype(np.int64) % 24).astype(np.int64)
    night = ((hour >= 18) | (hour < 6)).astype(np.float64)
    rows = files = size = 0
    for c0 in range(0, n_pods, CHUNK_PODS):
        n = min(CHUNK_PODS, n_pods - c0)
        rng = np.random.default_rng([seed, c0])
        ids = np.arange(c0, c0 + n)
        base = rng.lognormal(0.0, 0.6, n)
        lighting = rng.random(n) < 0.7
        shape = np.where(lighting[:, None], 0.05 + night[None, :], 0.3 + 0.7 * (1 - night[None, :]))
        p = base[:, None] * shape * (1 + rng.normal(0, 0.02, (n, steps)))
        p = np.maximum(p, 0.0)
        shares = rng.dirichlet((8.0, 8.0, 8.0), n)
        pf = np.clip(rng.normal(0.93, 0.03, n)[:, None] + rng.normal(0, 0.01, (n, steps)), 0.5, 1.0)
        q = p * np.tan(np.arccos(pf))
        pod = np.char.add("POD", np.char.zfill(ids.astype(str), 7))
        panel = np.char.add("QE", np.char.zfill((ids // PODS_PER_PANEL).astype(str), 6))
        town = np.char.add("T", np.char.zfill((ids // (PODS_PER_PANEL * PANELS_PER_TOWN)).astype(str), 4))
        flat_p = p.ravel()
        table = pa.table({
            "meter_id": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(n, dtype=np.int32), steps)), pa.array(pod)),
            "ts": pa.array(np.tile(ts, n), type=pa.timestamp("us", tz="UTC")),
            "p_kw": flat_p,
            "p_l1_kw": (p * shares[:, 0:1]).ravel(), "p_l2_kw": (p * shares[:, 1:2]).ravel(),
            "p_l3_kw": (p * shares[:, 2:3]).ravel(),
            "q_kvar": q.ravel(), "pf": pf.ravel(),
            "panel_id": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(n, dtype=np.int32), steps)), pa.array(panel)),
            "town": pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(n, dtype=np.int32), steps)), pa.array(town)),
        })
        path = out / f"part-{c0 // CHUNK_PODS:05d}.parquet"
        pq.write_table(table, path, row_group_size=1 << 20)
        rows += table.num_rows
        files += 1
        size += path.stat().st_size
    return {"rows": rows, "files": files, "bytes": size, "seconds": time.perf_counter() - t_start}


class PeakMemory:
    """Samples the RSS of this process and its children (the Spark JVM) every ``every_s`` seconds."""

    def __init__(self, every_s: float = 0.5):
        import psutil

        self._proc = psutil.Process()
        self.every_s = every_s
        self.peak_bytes = 0
        self.peak_driver = 0
        self.peak_jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            own = self._proc.memory_info().rss
            kids = 0
            for c in self._proc.children(recursive=True):
                try:
                    kids += c.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        self.peak_driver = max(self.peak_driver, own)
        self.peak_jvm = max(self.peak_jvm, kids)
        self.peak_bytes = max(self.peak_bytes, own + kids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_pods(n_pods: int, days: int = 30, cadence_s: int = 3600, master: str = "local[2]", *,
             workdir: Path, seed: int = 0, period: str = "month", keep: bool = False, models: bool = False) -> dict:
    """Generate ``n_pods`` x ``days`` and run ``fleet --engine spark`` over them; return the figures.

    Returns
    -------
    dict
        ``pods, days, cadence_s, rows, generate_s, wall_s`` (Spark session start excluded, reported
        as ``session_s``), ``peak_rss_mb`` (driver + JVM), ``driver_rss_mb``, ``jvm_rss_mb``,
        ``rows_per_s``, ``ms_per_pod``, ``pods_scored``, ``excluded``, ``input_mb``.
    """
    import shutil

    from wattwatch.fleet.run import run_fleet
    from wattwatch.runners.spark import session

    workdir = Path(workdir)
    data = workdir / f"pods-{n_pods}-{days}d-{cadence_s}s"
    if data.exists():
        shutil.rmtree(data)
    gen = make_pods(n_pods, days, cadence_s, out=data, seed=seed)
    with PeakMemory() as mem:
        t = time.perf_counter()
        session(master)
        session_s = time.perf_counter() - t
        t = time.perf_counter()
        run = run_fleet([str(data)], period=period, engine="spark", master=master, out=workdir / "fleet.parquet",
                        rejects=workdir / "rejects.csv", models=models)
        wall = time.perf_counter() - t
    f = run.features.features
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
    return {"pods": n_pods, "days": days, "cadence_s": cadence_s, "master": master, "rows": gen["rows"],
            "input_mb": round(gen["bytes"] / 1e6, 1), "generate_s": round(gen["seconds"], 1),
            "session_s": round(session_s, 1), "wall_s": round(wall, 1),
            "read_s": round(run.seconds.get("read", 0.0), 1), "features_s": round(run.seconds.get("features", 0.0), 1),
            "peak_rss_mb": round(mem.peak_bytes / 1e6), "driver_rss_mb": round(mem.peak_driver / 1e6),
            "jvm_rss_mb": round(mem.peak_jvm / 1e6), "rows_per_s": round(gen["rows"] / wall),
            "ms_per_pod": round(1000 * wall / n_pods, 3), "pods_scored": int(f["pod_id"].nunique()),
            "excluded": int(len(run.features.excluded)), "rejects": run.rejects}


__all__ = ["make_pods", "run_pods", "PeakMemory"]
