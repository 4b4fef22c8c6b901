"""Byte-for-byte check that a change to the Spark runner (or the core) changes no result.

Runs ``wattwatch detect FILE --scores S.parquet --json`` with one source tree (``--src``) on
several fleets (the `bench fleet` fleet with the default set and with the bench's set, and
``wattwatch simulate`` fleets at 1, 5, 15 and 60 min), on the local engine and on Spark
(``local[2]``), and keeps each run's alerts, scores and notices in ``--out``. ``--compare A B``
then byte-compares two such folders (e.g. main's tree against a branch's), and within each folder
the local engine against Spark.

    python scripts/spark_identity.py run --src /work/main/src --out /tmp/id-main
    python scripts/spark_identity.py run --src src --out /tmp/id-branch
    python scripts/spark_identity.py compare /tmp/id-main /tmp/id-branch
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

STEPS = {"1min": (6, 8), "5min": (16, 14), "15min": (24, 28), "60min": (24, 60)}  # meters, days
BENCH_SET = ("supply_outage,harmonic_noise,phase_imbalance,neutral_tamper,sensor_fault,loose_ct,firmware_drift,"
             "packet_loss,thermal_drift,frozen_readings,baseline_macd,seasonal_profile")


def _cli(src: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    return subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], env=env, capture_output=True,
                          text=True, check=False)


def fleets(work: Path, bench: Path | None) -> dict[str, tuple[Path, str | None]]:
    """name -> (telemetry file, detectors or None for the default set); simulated once into ``work``."""
    out: dict[str, tuple[Path, str | None]] = {}
    for step, (meters, days) in STEPS.items():
        d = work / f"sim-{step}"
        if not (d / "telemetry.parquet").exists():
            p = _cli(str(Path(__file__).resolve().parents[1] / "src"), "simulate", str(d), "--meters", str(meters),
                     "--days", str(days), "--step", step, "--seed", "3", "--format", "parquet")
            if p.returncode != 0:
                raise SystemExit(p.stderr[-2000:])
        out[f"sim-{step}"] = (d / "telemetry.parquet", None)
    if bench is not None:
        out["bench-default"] = (bench, None)
        out["bench-set"] = (bench, BENCH_SET)
    return out


def run(src: str, out: Path, work: Path, bench: Path | None, only: list[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (path, dets) in fleets(work, bench).items():
        if only and name not in only:
            continue
        for engine in ("local", "spark"):
            stem = out / f"{name}.{engine}"
            args = ["detect", str(path), "--out", f"{stem}.alerts.jsonl", "--scores", f"{stem}.scores.parquet",
                    "--json", "--engine", engine, "--rejects", f"{stem}.rejects.csv"]
            if dets:
                args += ["--detectors", dets]
            p = _cli(src, *args)
            if p.returncode != 0:
                raise SystemExit(f"{name} {engine}: {p.stderr[-3000:]}")
            summary = json.loads(p.stdout[p.stdout.index("{"):])
            for k in ("seconds", "readings_per_s", "log", "out", "scores", "rejects"):
                summary.pop(k, None)
            (stem.parent / f"{stem.name}.summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
            print(f"{name:14s} {engine:5s} alerts {summary.get('alerts')}", flush=True)


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def compare(a: Path, b: Path) -> int:
    bad = 0
    files = sorted({f.name for f in a.iterdir()} | {f.name for f in b.iterdir()})
    for f in files:
        if f.endswith(".rejects.csv") or f.endswith(".log"):
            continue
        fa, fb = a / f, b / f
        if not fa.exists() or not fb.exists():
            print(f"MISSING {f}")
            bad += 1
            continue
        same = fa.read_bytes() == fb.read_bytes()
        bad += not same
        print(f"{'same' if same else 'DIFF'} {f} {_digest(fa)} {_digest(fb)}")
    for d in (a, b):  # the local engine against Spark within each tree
        for f in sorted(d.glob("*.local.*")):
            if f.name.endswith((".rejects.csv", ".log")):
                continue
            g = d / f.name.replace(".local.", ".spark.")
            same = g.exists() and f.read_bytes() == g.read_bytes()
            bad += not same
            print(f"{'same' if same else 'DIFF'} {d.name}: {f.name} vs spark")
    print("ALL IDENTICAL" if bad == 0 else f"{bad} DIFFERENCE(S)")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--src", required=True)
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--work", type=Path, default=Path("/tmp/spark-identity-fleets"))
    r.add_argument("--bench", type=Path, default=None, help="the bench-fleet parquet (`bench fleet --workdir`)")
    r.add_argument("--only", nargs="*")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    ns = ap.parse_args()
    if ns.cmd == "run":
        run(ns.src, ns.out, ns.work, ns.bench, ns.only)
    else:
        raise SystemExit(compare(ns.a, ns.b))


if __name__ == "__main__":
    main()
