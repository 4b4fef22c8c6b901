"""Edge commands: ``wattwatch edge --config meter.toml`` (one meter's waveform → signed tamper
reports), ``wattwatch bench edge`` (latency and CPU), and the waveform writer behind
``wattwatch simulate --waveform``. :func:`register` adds them to the CLI (at the end of
:mod:`wattwatch.app.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from wattwatch.app.cli import _errors, _fail, _json, _print_listing, _term, console, err_console


def edge(
    config: Path = typer.Option(..., "--config", "-c", help="Meter config (TOML): meter_id, \\[input] or \\[simulate], "
                                "\\[tamper], \\[signing], \\[log], \\[mqtt]."),
    status: bool = typer.Option(False, "--status", help="Also publish an on-demand status report at the end."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run one meter at the edge: waveform samples (file, pipe or simulator) → per-cycle RMS, ΔI,
    THD, harmonics, frequency → the tamper state machine → signed reports on meter/<id>/tamper
    (QoS 1, TLS), each logged (fsync) first; what the broker did not acknowledge is sent again on
    the next start. Events are printed as JSON lines."""
    # SIGUSR1 (a status request) is caught before the edge code is imported (seconds on a loaded
    # machine): one sent while the meter starts is answered at its first block, not fatal.
    from wattwatch.edge import ondemand

    ondemand.catch()
    try:
        from wattwatch.edge import run as edge_run

        with _errors():
            site = edge_run.load(config)
            summary = edge_run.run(site, echo=lambda m: print(json.dumps(m, separators=(",", ":")), flush=True),
                                   status=status)
    finally:
        ondemand.done()
    for w in summary.get("warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {_term(w)}", highlight=False, soft_wrap=True)
    if as_json:
        print(_json(summary))
        return
    t = Table("figure", "value", title=f"edge {_term(site.meter_id)}")
    for k in ("seconds", "fs", "cycles", "state", "counter", "resent", "resigned", "unacknowledged",
              "cpu_s_per_meter_s"):
        t.add_row(k, str(summary[k]))
    t.add_row("events", ", ".join(f"{e['status']} {e['kind']} {e['cycle_start']}" for e in summary["events"]) or "none")
    _print_listing(t)
    if not summary["all_acknowledged"]:
        _fail(f"{summary['unacknowledged']} report(s) not acknowledged by the broker yet: kept in {site.log_path} "
              "and sent again on the next start", code=3)


def bench_edge(
    trials: int = typer.Option(200, "--trials", min=10, help="Bypass onsets per rate with persistence 0 "
                               "(a fifth of them, at least 20, with 30 s)."),
    seed: int = typer.Option(0, "--seed"),
    cpu_seconds: float = typer.Option(60.0, "--cpu-seconds", min=5.0, help="Seconds of waveform for the CPU figure."),
    detection: bool = typer.Option(False, "--detection", help="Also run every simulator scenario (3 seeds, 200 s, "
                                   "both rates, persistence 30 s and 0): faults found, look-alike trips."),
    soak_hours: float = typer.Option(0.0, "--soak-hours", min=0.0, max=168.0, help="Also run hours of each "
                                     "look-alike (25 mA leakage, motor starts, LED/SMPS, voltage sags) through the "
                                     "whole waveform path at persistence 30 s and 0: tamper reports (must be 0)."),
    soak_rate: Optional[float] = typer.Option(None, "--soak-rate", help="--soak-hours at this rate only "
                                              "(3200 or 6400; default both)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Latency from the first sample of a bypass to the publish call (p50/p99 at 3.2 and 6.4 kHz,
    persistence 0 and 30 s), the publish's own cost (sign + fsync), CPU per meter-second of
    waveform and meters per core."""
    from wattwatch.edge import bench

    if soak_rate is not None and not 1000 <= soak_rate <= 100_000:
        _fail(f"--soak-rate {soak_rate:g}: expected samples per second, 1000 .. 100000 (3200 or 6400)")
    r = bench.run(trials=trials, seed=seed, cpu_seconds=cpu_seconds, with_detection=detection, soak_hours=soak_hours,
                  soak_rates=None if soak_rate is None else (soak_rate,))
    if as_json:
        print(_json(r))
        return
    t = Table("rate", "persistence", "trials", "p50 ms", "p99 ms", "p99 beyond persistence", "p99 own core",
              "samples max (floor)", "processing p50 / p99 ms", "logged p50 / p99 ms",
              title="bench edge: first bypassed sample → publish call (logged: → signed, fsync'd, handed to MQTT)")
    for x in r["latency"]:
        t.add_row(f"{x['fs'] / 1000:g} kHz", f"{x['persistence_s']:g} s", str(x["trials"]), f"{x['p50_ms']:.1f}",
                  f"{x['p99_ms']:.1f}", f"{x['p99_after_persistence_ms']:.1f}", f"{x['own_core_p99_ms']:.1f}",
                  f"{x['samples_max_ms']:.1f}",
                  f"{x['processing_p50_ms']:.2f} / {x['processing_p99_ms']:.2f}",
                  f"{x['logged_p50_ms']:.1f} / {x['logged_p99_ms']:.1f}")
    _print_listing(t)
    c = Table("rate", "CPU ms per meter-second (1-cycle blocks)", "meters per core", "(1-s blocks)", "meters per core",
              title="bench edge: CPU")
    for x in r["cpu"]:
        c.add_row(f"{x['fs'] / 1000:g} kHz", f"{x['cycle_blocks']['cpu_ms_per_meter_s']:.2f}",
                  str(x["cycle_blocks"]["meters_per_core"]), f"{x['second_blocks']['cpu_ms_per_meter_s']:.2f}",
                  str(x["second_blocks"]["meters_per_core"]))
    _print_listing(c)
    p = r["publish"]
    console.print(f"publish (HMAC-SHA256 + tamper log append with fsync): p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms")
    if "detection" in r:
        d = Table("scenario", "rate", "persistence", "runs", "found", "tamper reports", "kind", "trip after (s)",
                  title="bench edge: simulated waveforms")
        for x in r["detection"]:
            d.add_row(x["scenario"], f"{x['fs'] / 1000:g} kHz", f"{x['persistence_s']:g} s", str(x["runs"]),
                      str(x["found"]) if x["fault"] else "-", str(x["tamper_reports"]), ", ".join(x["kinds"]) or "-",
                      ", ".join(f"{v:g}" for v in x["trip_after_s"]) or "-")
        _print_listing(d)
    if "soak" in r:
        k = Table("scenario", "rate", "hours", "persistence", "cycles", "tamper reports", "cycles over limit",
                  "noisy cycles", "excluded (inrush/step)", "other events", "CPU ms per meter-second",
                  title="bench edge: look-alikes through the waveform path")
        for x in r["soak"]:
            k.add_row(x["scenario"], f"{x['fs'] / 1000:g} kHz", f"{x['hours']:g}", f"{x['persistence_s']:g} s",
                      f"{x['cycles']:,}", str(x["tamper_reports"]), f"{x['over_cycles']:,}", f"{x['noisy_cycles']:,}",
                      f"{x['excluded_cycles']:,}", ", ".join(x["other_events"]) or "-", f"{x['cpu_ms_per_meter_s']:.3f}")
        _print_listing(k)


def register(app, bench_app) -> None:
    """Add ``edge`` and ``bench edge`` to the CLI's groups (those of ``python -m`` too)."""
    app.command("edge")(edge)
    bench_app.command("edge")(bench_edge)


def simulate_waveform(out: Path, scenarios: str, seconds: float, rate: float, phases: int, seed: int) -> dict:
    """Write ``<scenario>.wwf`` per scenario and ``events.json`` into ``out``."""
    from wattwatch.edge.metrology import write_wwf
    from wattwatch.edge.simulate import SCENARIOS, Waveform

    if not 1000 <= rate <= 100_000:  # NaN too: the waveform file could not be read back
        _fail(f"--rate {rate:g}: expected samples per second, 1000 .. 100000 (a meter samples at 3200-6400)")
    names = list(SCENARIOS) if scenarios in ("all", "") else [s.strip() for s in scenarios.split(",") if s.strip()]
    bad = [s for s in names if s not in SCENARIOS]
    if bad:
        _fail(f"--waveform: unknown scenario(s) {bad}; known: {', '.join(SCENARIOS)} or all")
    if out.exists() and not out.is_dir():
        _fail(f"{out}: exists and is not a folder (simulate writes a folder of files)")
    out.mkdir(parents=True, exist_ok=True)
    events = {}
    files = {}
    for k, name in enumerate(names):
        try:
            w = Waveform(name, seconds=seconds, fs=rate, seed=seed + k, phases=phases)
        except ValueError as exc:
            _fail(str(exc))
        path = out / f"{name}.wwf"
        with open(path, "wb") as f:
            first = True
            for block in w.blocks(10.0):
                if first:
                    write_wwf(f, block, w.fs, w.channels)
                    first = False
                else:
                    f.write(block.astype("<f4").tobytes())
        files[name] = path
        events[name] = {"file": path.name, "fs": w.fs, "channels": list(w.channels), "seconds": seconds, "seed": seed + k,
                        "t0": w.t0, "events": w.events}
    (out / "events.json").write_text(json.dumps(events, indent=1))
    return {"files": files, "events": events}
