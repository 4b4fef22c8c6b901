"""``wattwatch edge --config meter.toml``: one meter's input → metrology → tamper machine → signed
reports. The config (every key optional except ``meter_id`` and one input)::

    meter_id = "M-17"
    [input]                    # a file (wwf, csv, npy), "-" for a pipe (wwf on stdin), or [simulate]
    path = "bypass.wwf"
    format = "wwf"             # default: by suffix
    fs = 3200                  # csv / npy only (wwf carries it)
    channels = ["v", "i_l", "i_n"]   # npy only (csv takes its header, wwf carries them)
    f_nominal = 50
    t0 = "2026-01-01T00:00:00Z"      # time of the first sample (default: now)
    [simulate]                 # instead of [input]: scenario, seconds, fs, seed, phases, block_s
    scenario = "bypass"
    [tamper]                   # the state machine (wattwatch.edge.tamper.TamperConfig)
    persistence_s = 30
    [tamper.neutral]           # the batch rule's limits (abs_limit_a, rel_limit, bypass_load_a ...)
    [signing]
    key_file = "M-17.key"      # hex HMAC-SHA256 secret, or a PEM Ed25519 private key
    [log]
    path = "tamper.log"        # appended and fsync'd; holds the counter and what is not acknowledged
    [mqtt]                     # omit to only print the events
    host = "127.0.0.1"
    port = 8883
    topic = "meter/{meter_id}/tamper"
    tls_ca = "ca.pem"          # TLS when given; tls_cert/tls_key for a client certificate
    ack_timeout_s = 10
    resign_after_s = 240       # a report acknowledged later than this after signing is signed anew
                               # (keep it below the head-end's window_s)

Relative paths are relative to the config file. Reports go out when the meter enters or leaves
the tamper state (and ``signal_noisy`` / ``signal_ok``), and on demand: ``--status`` at the end of
the input, SIGUSR1 at any time (a ``status = "report"`` message with the state, the counts and the
last cycle).
"""

from __future__ import annotations

import contextlib
import datetime
import math
import signal
import sys
import threading
import time
from wattwatch.tomlfile import did_you_mean, read_toml
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wattwatch.edge import ondemand
from wattwatch.edge.meter import EdgeMeter
from wattwatch.edge.metrology import blocks
from wattwatch.edge.publish import Publisher, TamperLog
from wattwatch.edge.signing import METER_ID, Signer
from wattwatch.edge.simulate import Waveform
from wattwatch.edge.ondemand import STATUS_REQUEST
from wattwatch.edge.tamper import TamperConfig
from wattwatch.errors import ConfigError


@dataclass
class EdgeSite:
    meter_id: str
    input: dict
    simulate: dict | None
    tamper: TamperConfig
    key_file: Path
    log_path: Path
    mqtt: dict | None
    root: Path
    where: str = "edge config"


# What each key of each table must be (checked before anything runs: a wrong type is a message
# naming the file, the table and the key, never a traceback further on).
_TEXT, _PATH, _NUM, _POS, _NONNEG, _INT, _NAMES, _TIME = "text", "path", "num", "pos", "nonneg", "int", "names", "time"
SCHEMA = {
    "input": {"path": _PATH, "format": _TEXT, "fs": _POS, "channels": _NAMES, "f_nominal": _POS, "t0": _TIME},
    "simulate": {"scenario": _TEXT, "seconds": _POS, "fs": _POS, "seed": _INT, "phases": _INT, "block_s": _POS},
    "signing": {"key_file": _PATH},
    "log": {"path": _PATH},
    "mqtt": {"host": _TEXT, "port": _INT, "topic": _TEXT, "qos": _INT, "client_id": _TEXT, "tls_ca": _PATH,
             "tls_cert": _PATH, "tls_key": _PATH, "username": _TEXT, "password": _TEXT, "keepalive": _INT,
             "ack_timeout_s": _NONNEG, "resign_after_s": _POS},
}
_SAID = {_TEXT: "a string", _PATH: "a file path (a string)", _NUM: "a number", _POS: "a number > 0",
         _NONNEG: "a number >= 0", _INT: "an integer", _NAMES: "a list of channel names (strings)",
         _TIME: "a time (a string such as \"2026-01-01T00:00:00Z\")"}
# Upper bounds where a larger value is a mistake that would otherwise run for ever or overflow.
_MAX = {("simulate", "seconds"): 7 * 86400.0, ("simulate", "block_s"): 3600.0, ("mqtt", "port"): 65535,
        ("mqtt", "keepalive"): 65535, ("simulate", "seed"): 2 ** 63 - 1}


def _typed(value, kind: str) -> bool:
    if kind in (_TEXT, _PATH):
        return isinstance(value, str) and value != "" and "\0" not in value
    if kind == _NAMES:
        return isinstance(value, list) and all(isinstance(c, str) and c for c in value)
    if kind == _TIME:
        return isinstance(value, (str, datetime.datetime))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == _INT:
        return isinstance(value, int) and value >= 0
    if not math.isfinite(value):
        return False
    return value > 0 if kind == _POS else value >= 0 if kind == _NONNEG else True


def _table(doc: dict, key: str, where: str) -> dict | None:
    t = doc.get(key)
    if t is None:
        return None
    if not isinstance(t, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    known = SCHEMA[key]
    bad = set(t) - set(known)
    if bad:
        raise ConfigError(f"{where}: [{key}]: unknown key(s) {sorted(bad)}; known: {', '.join(sorted(known))}")
    for k, v in t.items():
        if not _typed(v, known[k]):
            raise ConfigError(f"{where}: [{key}] {k} must be {_SAID[known[k]]}, got {v!r}"[:300])
        top = _MAX.get((key, k))
        if top is not None and v > top:
            raise ConfigError(f"{where}: [{key}] {k} must be at most {top:g}, got {v!r}")
    return dict(t)


def load(path: Path) -> EdgeSite:
    path = Path(path)
    where = str(path)
    doc = read_toml(path, "edge config")
    root = path.resolve().parent
    known = ("meter_id", "input", "simulate", "tamper", "signing", "log", "mqtt")
    bad = set(doc) - set(known)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)}{did_you_mean(bad, known)}; known: {', '.join(known)}")
    meter = doc.get("meter_id")
    if not isinstance(meter, str) or not METER_ID.match(meter):
        raise ConfigError(f"{where}: meter_id must be 1-64 letters, digits, '.', '_' or '-', got {meter!r}")
    inp = _table(doc, "input", where)
    sim = _table(doc, "simulate", where)
    if (inp is None) == (sim is None):
        raise ConfigError(f"{where}: give exactly one of [input] and [simulate]")
    if inp is not None and "path" not in inp:
        raise ConfigError(f"{where}: [input] path is required (\"-\" for stdin)")
    try:
        tamper = TamperConfig.from_dict(doc.get("tamper"), f"{where}: [tamper]")
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    signing = _table(doc, "signing", where) or {}
    if "key_file" not in signing:
        raise ConfigError(f"{where}: [signing] key_file is required (hex HMAC secret or PEM Ed25519 key)")
    log = _table(doc, "log", where) or {}
    mqtt = _table(doc, "mqtt", where)

    def rel(p):
        q = Path(p)
        return q if q.is_absolute() else root / q
    if mqtt:
        for k in ("tls_ca", "tls_cert", "tls_key"):
            if k in mqtt:
                mqtt[k] = str(rel(mqtt[k]))
                if not Path(mqtt[k]).is_file():
                    raise ConfigError(f"{where}: [mqtt] {k}: {mqtt[k]}: no such file")
        if "tls_key" in mqtt and "tls_cert" not in mqtt:
            raise ConfigError(f"{where}: [mqtt] tls_key needs tls_cert (the client certificate)")
        if mqtt.get("qos", 1) not in (1, 2):
            raise ConfigError(f"{where}: [mqtt] qos must be 1 or 2 (tamper events are never fire-and-forget)")
        if "topic" in mqtt:
            rest = mqtt["topic"].replace("{meter_id}", "")
            if any(ch in rest for ch in "{}+#") or "{meter_id}" not in mqtt["topic"]:
                raise ConfigError(f"{where}: [mqtt] topic must hold {{meter_id}} and no other {{...}}, + or #, "
                                  f"got {mqtt['topic']!r}")
        if "host" not in mqtt:
            raise ConfigError(f"{where}: [mqtt] host is required (leave out [mqtt] to only print the events)")
    if inp is not None and inp["path"] != "-":
        inp["path"] = str(rel(inp["path"]))
    return EdgeSite(meter, inp or {}, sim, tamper, rel(signing["key_file"]), rel(log.get("path", f"{meter}.tamper.log")),
                    mqtt, root, where)


def _t0(value, where: str) -> float:
    if value is None:
        return time.time()
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        t = None
    if t is None or t is pd.NaT:
        raise ConfigError(f"{where}: [input] t0: not a time: {value!r}")
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return t.timestamp()


STATUS_MIN_S = 1.0  # on-demand status reports: at most one per this many seconds of samples


@contextlib.contextmanager
def _on_demand():
    """SIGUSR1 asks for a status report (``kill -USR1 <pid>``); :data:`STATUS_REQUEST` does too
    (:mod:`wattwatch.edge.ondemand`: the command installs the same handler before it imports this)."""
    old = ondemand.catch()
    try:
        yield STATUS_REQUEST
    finally:
        if old is not None:
            signal.signal(signal.SIGUSR1, old)


def run(site: EdgeSite, *, echo=None, status: bool = False) -> dict:
    """Run the input to its end; returns a summary (events, counts, what is still unacknowledged).

    SIGUSR1 is caught from the first line on: a request that arrives while the key, the tamper log
    and the broker connection are being set up is answered at the first block, not the default
    action of the signal (which ends the process)."""
    with _on_demand() as asked:
        return _run(site, asked, echo=echo, status=status)


def _run(site: EdgeSite, asked: ondemand.Request, *, echo=None, status: bool = False) -> dict:
    try:
        signer = Signer.from_file(site.key_file)
    except ValueError as exc:
        raise ConfigError(f"{site.where}: [signing] key_file: {exc}") from None
    warnings = []
    mode = site.key_file.stat().st_mode & 0o777
    if mode & 0o077:  # the meter's secret: whoever reads it signs as the meter
        warnings.append(f"{site.key_file}: the signing key is readable by other users (mode {mode:04o}): anyone who "
                        f"reads it can sign reports as {site.meter_id}; chmod 600 it")
    try:
        log = TamperLog(site.log_path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    mq = dict(site.mqtt or {})
    ack_timeout = float(mq.pop("ack_timeout_s", 10.0))
    pub = Publisher(site.meter_id, signer, log, echo=echo, **mq)
    try:
        resent = pub.resend_pending()
        if site.simulate is not None:
            s = dict(site.simulate)
            block_s = float(s.pop("block_s", 0.02))
            try:
                w = Waveform(**s)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{site.where}: [simulate]: {exc}") from None
            fs, chans, it, t0 = w.fs, w.channels, w.blocks(block_s), w.t0
            f_nominal = w.f0
        else:
            i = site.input
            src = i["path"]
            fs_cfg = i.get("fs")
            try:
                fs, chans, it = blocks(sys.stdin.buffer if src == "-" else Path(src), fmt=i.get("format"),
                                       channels=i.get("channels"), fs=fs_cfg, block=4096)
            except FileNotFoundError:
                raise ConfigError(f"{site.where}: [input] path: {src}: no such file") from None
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            t0 = _t0(i.get("t0"), site.where)
            f_nominal = i.get("f_nominal", 50.0)
            if isinstance(f_nominal, bool) or not isinstance(f_nominal, (int, float)) or not math.isfinite(f_nominal):
                raise ConfigError(f"{site.where}: [input] f_nominal must be a number (50 or 60)")
        try:
            meter = EdgeMeter(site.meter_id, chans, fs, site.tamper, f_nominal=f_nominal, t0=t0, on_event=pub.publish)
        except ValueError as exc:
            what = "[simulate]" if site.simulate is not None else f"[input] {site.input.get('path')}"
            raise ConfigError(f"{site.where}: {what}: {exc}") from None
        def report():
            pub.publish({"status": "report", "kind": "status", "event": f"status@{meter.machine.ts(meter.machine.counts['cycles'])}",
                         "evidence": meter.status()})

        t = time.perf_counter()
        last = -math.inf
        try:
            for b in it:
                meter.feed(b)
                # SIGUSR1 (or STATUS_REQUEST): a status report now, at most one per second of samples
                # (a storm of requests would spend a counter per block: the head-end refuses a report
                # more than 64 counters below the latest, so a late redelivered tamper report would
                # be taken for a replay); a request inside the second waits for its end.
                if asked.is_set() and meter.samples / fs - last >= STATUS_MIN_S:
                    asked.clear()
                    last = meter.samples / fs
                    report()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        took = time.perf_counter() - t
        # A request the limit held (it came within a second of the last report) is answered now that
        # the input has ended: its second would never end. --status's report answers it as well.
        if status or asked.is_set():
            asked.clear()
            report()
        acked = pub.wait_acked(ack_timeout) if pub.client is not None else True
        seconds = meter.samples / fs
        return {"meter_id": site.meter_id, "seconds": round(seconds, 3), "fs": fs, "cycles": meter.machine.counts["cycles"],
                "events": [{k: e.get(k) for k in ("status", "kind", "delta_a", "cycle_start", "cycle_end")}
                           for e in meter.events],
                "state": meter.machine.state, "counts": meter.machine.counts, "resent": resent, "resigned": pub.resigned,
                "unacknowledged": pub.unacked(), "all_acknowledged": acked, "counter": log.seq, "warnings": warnings,
                "cpu_s_per_meter_s": round(took / seconds, 6) if seconds else None}
    finally:
        pub.close()
