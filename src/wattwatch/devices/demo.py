"""``wattwatch watch --demo``: a small site on 127.0.0.1 — two Modbus gateways (Modbus/TCP with
three meters, an RTU-over-TCP serial gateway with two), MQTT meters on a mosquitto started from
PATH (when there is one), an SNMPv3 PDU and UPS (pysnmp agents, polled with authPriv SHA + AES) when
:mod:`wattwatch.devices.snmp` is importable — a site
config for them in a temporary folder, and faults injected on a schedule so that alerts appear
within a minute or two (meters are profiled on their first minute). A device's ``t`` counts from the
watcher's first reading of it (:meth:`Demo.on_step`, which ``watch --demo`` calls after every step),
not from the demo's start: a watcher that comes up late (a loaded machine, a slow import) still
profiles every device on its first minute before any fault, and sees each fault begin:

======  ==========================================================================
 t (s)   fault (seconds after the watcher first read the device)
======  ==========================================================================
   70   open CT on phase 1 of ``tcp-2`` (SENSOR_FAULT family: current 0 under voltage)
   75   neutral bypass on ``tcp-1`` and the first MQTT meter (ERR_IMBAL_LIMIT_EXCEEDED)
   80   ``tcp-3`` answers 250 ms late (WARN_LINK_SLOW)
   85   the serial gateway goes down (its meters' polls are lost: ALRM_PKT_LOSS_CRIT; one gateway alert after 10 s) ...
   90   outlet 2 of the SNMP PDU draws 16 A (stored; SPEC has no over-current code)
   95   the UPS loses its input and runs on battery (input voltage 0: INFO_SUPPLY_OUTAGE)
  100   ... the serial gateway comes back (reconnect)
======  ==========================================================================
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from wattwatch import devices

# A typical three-phase meter's map: voltages int32 in 0.1 V (low word first), currents uint16 in
# mA, powers float32, energy uint32 in 0.01 kWh, temperature int16 in 0.1 °C.
MODEL = [
    {"channel": "v_l1_v", "table": "input", "address": 0, "type": "int32", "word_order": "little", "scale": 0.1},
    {"channel": "v_l2_v", "table": "input", "address": 2, "type": "int32", "word_order": "little", "scale": 0.1},
    {"channel": "v_l3_v", "table": "input", "address": 4, "type": "int32", "word_order": "little", "scale": 0.1},
    {"channel": "i_l1_a", "table": "input", "address": 6, "type": "uint16", "scale": 0.001},
    {"channel": "i_l2_a", "table": "input", "address": 7, "type": "uint16", "scale": 0.001},
    {"channel": "i_l3_a", "table": "input", "address": 8, "type": "uint16", "scale": 0.001},
    {"channel": "i_n_a", "table": "input", "address": 9, "type": "uint16", "scale": 0.001},
    {"channel": "p_kw", "table": "input", "address": 10, "type": "float32"},
    {"channel": "q_kvar", "table": "input", "address": 12, "type": "float32"},
    {"channel": "s_kva", "table": "input", "address": 14, "type": "float32"},
    {"channel": "pf", "table": "input", "address": 16, "type": "int16", "scale": 0.001},
    {"channel": "temp_c", "table": "input", "address": 17, "type": "int16", "scale": 0.1},
    {"channel": "e_kwh", "table": "holding", "address": 100, "type": "uint32", "scale": 0.01},
]
DETECTORS = ["supply_outage", "neutral_tamper", "sensor_fault", "phase_imbalance", "packet_loss"]
# Meters at 1 s, profiled on their first minute; rules with their spans scaled to a demo.
DETECTOR_CONFIG = {
    "engine": {"profile_days": 60.0 / 86400},
    # A rule's finding is final once the rules that may explain it (a supply outage) can no longer
    # grow over it: their merge gap and bridge, 10 min and 30 min by default, scaled to seconds.
    "supply_outage": {"post": {"merge_gap_s": 10.0, "max_bridge_s": 10.0}},
    "sensor_fault": {"post": {"min_duration_s": 10.0, "merge_gap_s": 10.0, "max_bridge_s": 10.0}},
    "phase_imbalance": {"post": {"min_duration_s": 10.0, "merge_gap_s": 10.0, "max_bridge_s": 10.0}},
    "neutral_tamper": {"post": {"min_duration_s": 5.0, "merge_gap_s": 10.0, "max_bridge_s": 10.0}},
    "packet_loss": {"window_s": 20.0, "min_expected": 10, "min_lost": 2,
                    "post": {"min_duration_s": 2.0, "merge_gap_s": 20.0, "max_bridge_s": 600.0}},
}
SCHEDULE = [(70, "tcp", "open_ct", {"unit": 2, "phase": 1}), (75, "tcp", "neutral_bypass", {"unit": 1}),
            (75, "mqtt", "neutral_bypass", {"meter_id": "mqtt-1"}), (80, "tcp", "delay", {"ms": 250, "unit": 3}),
            (85, "rtu", "down", {}), (90, "pdu", "overload", {"outlet": 2, "amps": 16.0}),
            (95, "ups", "on_battery", {"drain_pct_per_min": 20.0}), (100, "rtu", "up", {})]


def _toml(v) -> str:
    import json

    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


class Demo:
    """The running demo: devices, broker, the site config's path; :meth:`stop` ends them all."""

    def __init__(self, folder: Path | None = None, *, speed: float = 1.0, log=print, profile_s: float = 60.0):
        self.tmp = None
        if folder is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="wattwatch-demo-")
            folder = Path(self.tmp.name)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.speed = speed
        self.profile_s = float(profile_s)
        self.running: dict[str, object] = {}
        self.broker = None
        self._stop = threading.Event()
        self._cv = threading.Condition()
        self._device_of: dict[str, str] = {}      # meter id -> the device that serves it
        self._first_read: dict[str, float] = {}   # device -> monotonic time the watcher first had its readings
        self.events: list[str] = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from wattwatch.ports import free_port

        self.running["tcp"] = devices.start({"type": "modbus", "name": "tcp", "registers": MODEL,
                                             "meters": ["tcp-1", "tcp-2", "tcp-3"], "interval_s": 1.0, "seed": 1})
        self.running["rtu"] = devices.start({"type": "modbus", "name": "rtu", "registers": MODEL, "framing": "rtu",
                                             "meters": ["rtu-1", "rtu-2"], "interval_s": 1.0, "seed": 2})
        sources = [self._modbus_source()]
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe:
            port = free_port()
            conf = self.folder / "mosquitto.conf"
            import os

            user = "user root\n" if os.geteuid() == 0 else ""
            conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            f"log_dest file {self.folder}/mosquitto.log\n")
            self.broker = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            _wait_port(port)
            self.running["mqtt"] = devices.start({"type": "mqtt", "name": "mqtt", "port": port,
                                                  "meters": ["mqtt-1", "mqtt-2"], "interval_s": 1.0, "seed": 3})
            sources.append({"type": "mqtt", "name": "mqtt", "host": "127.0.0.1", "port": port,
                            "topics": ["meters/#"], "client_id": f"wattwatch-demo-{port}"})
        else:
            self.events.append("no mosquitto on PATH: the demo runs without MQTT meters")
        if devices.available("snmp"):
            try:
                from wattwatch.devices import snmp

                agents = snmp.demo_agents(self.folder)
                self.running.update(agents)
                sources.append(snmp.demo_source(agents))
            except Exception as exc:  # noqa: BLE001 - the demo goes on without it
                self.events.append(f"SNMP PDU/UPS not started: {type(exc).__name__}: {exc}")
        lines = ["# wattwatch watch --demo: simulated devices on 127.0.0.1", f"detectors = {_toml(DETECTORS)}", "",
                 f'[store]\npath = "{(self.folder / "demo.duckdb").as_posix()}"', "",
                 "[stream]\ncheckpoint_s = 5.0", "",
                 # The silence watch at demo speed: the serial gateway's 15 s down (t 85-100) is said
                 # after 10 s, one alert for the gateway (gateway:HOST:PORT/rtu) (a site's default is 120 s: runners/silence.py; at 5 s a loaded laptop's
                 # late polls of tcp-3, 250 ms slow, made 6-s "silences").
                 "[silence]\nmin_s = 10.0", ""]
        for k, v in DETECTOR_CONFIG.items():
            if k == "engine":
                v = {**v, "profile_days": self.profile_s / 86400}
            lines.append(f"[{k}]")
            lines += [f"{a} = {_toml(b)}" for a, b in v.items()]
            lines.append("")
        lines += ["[models.em]", f"registers = {_toml(MODEL)}", ""]
        for s in sources:
            lines.append("[[sources]]")
            devs = s.pop("devices", None)
            lines += [f"{k} = {_toml(v)}" for k, v in s.items()]
            for d in devs or ():
                lines.append("[[sources.devices]]")
                lines += [f"{k} = {_toml(v)}" for k, v in d.items()]
            lines.append("")
        self.site = self.folder / "site.toml"
        self.site.write_text("\n".join(lines))
        for name, r in self.running.items():
            ep = r.endpoint
            meters = ep["units"].values() if "units" in ep else ep["meters"] if "meters" in ep else r.meter_ids()
            self._device_of.update((str(m), name) for m in meters)
        self._sched = threading.Thread(target=self._schedule, name="demo-faults", daemon=True)
        self._sched.start()

    def _modbus_source(self) -> dict:
        devs = []
        for gw in ("tcp", "rtu"):
            ep = self.running[gw].endpoint
            devs += [{"meter_id": m, "host": ep["host"], "port": ep["port"], "unit": u, "model": "em",
                      "framing": ep["framing"]} for u, m in ep["units"].items()]
        return {"type": "modbus", "name": "modbus", "interval_s": 1.0, "timeout_s": 0.4, "retries": 1,
                "backoff_s": 0.05, "devices": devs}

    def on_step(self, engine=None, report=None, batches=()) -> None:
        """Tell the demo what the watcher read: ``api.watch``'s ``on_step(engine, report, batches)``
        (call it after every step). A device's fault clock starts at the step that first brings its
        readings, so its faults never fall inside the watcher's profile of it, however late the
        watcher came up; a device the watcher never reads gets no fault (said by :meth:`stop`). Called
        from the watcher's thread; the schedule thread waits on ``_cv`` for it or for :meth:`stop`."""
        if len(self._first_read) == len(set(self._device_of.values())):
            return
        seen: set[str] = set()
        for b in batches:
            f = getattr(b, "frame", None)
            if f is not None and len(f) and "meter_id" in f:
                seen.update(f["meter_id"].astype(str).unique())
        new = {self._device_of[m] for m in seen if m in self._device_of} - set(self._first_read)
        if new:
            now = time.monotonic()
            with self._cv:
                self._first_read.update(dict.fromkeys(new, now))
                self._cv.notify_all()
            for dev in sorted(new):   # (rs1) said: when to look for its faults (and that the clock runs)
                ats = [at for at, d, _, _ in SCHEDULE if d == dev]
                if ats:
                    self.log(f"demo: the watcher reads {dev}: its faults come {min(ats) / self.speed:.0f}-"
                             f"{max(ats) / self.speed:.0f} s from now")

    def unread(self) -> list[str]:
        """The devices with faults on the schedule that the watcher has not read yet (their faults wait)."""
        with self._cv:
            return sorted({dev for _, dev, _, _ in SCHEDULE if dev in self.running} - set(self._first_read))

    def _next_fault(self, todo: list) -> int | None:
        """Wait for the next fault that is due (its device read, its time come); its index in
        ``todo``, or None once the demo stops."""
        with self._cv:
            while not self._stop.is_set():
                due = [(self._first_read[dev] + at / self.speed, k) for k, (at, dev, _, _) in enumerate(todo)
                       if dev in self._first_read]
                wait = min(due)[0] - time.monotonic() if due else None
                if wait is not None and wait <= 0:
                    return min(due)[1]
                self._cv.wait(wait)
        return None

    def _schedule(self) -> None:
        todo = [s for s in SCHEDULE if s[1] in self.running]
        while todo:
            k = self._next_fault(todo)
            if k is None:
                return
            at, dev, fault, params = todo.pop(k)
            if self._stop.is_set():    # stopped meanwhile: its devices are going (no "could not inject")
                return
            r = self.running[dev]
            try:
                r.inject(fault, **params)
                msg = f"demo: t={at:>3d} s injected {fault} on {dev} {params or ''}"
            except Exception as exc:  # noqa: BLE001
                msg = f"demo: t={at} s could not inject {fault} on {dev}: {exc}"
            self.events.append(msg)
            self.log(msg)

    def endpoints(self) -> dict:
        return {k: r.endpoint for k, r in self.running.items()}

    def views(self) -> list[dict]:
        return [r.view() for r in self.running.values()]

    def stop(self) -> None:
        if not self._stop.is_set() and self._first_read:
            # (rs1) A device the watcher never read never gets its faults: said, not left silent.
            for dev in self.unread():
                msg = f"demo: the watcher never read {dev}: its faults were not injected"
                self.events.append(msg)
                self.log(msg)
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for r in list(self.running.values())[::-1]:
            try:
                r.stop()
            except Exception:  # noqa: BLE001 - stopping the rest anyway
                pass
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(10)
            except subprocess.TimeoutExpired:
                self.broker.kill()
        if self.tmp is not None:
            self.tmp.cleanup()


def _wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the demo's broker did not listen on 127.0.0.1:{port}")
