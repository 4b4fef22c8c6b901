"""A simulated SNMPv3 PDU or UPS: a pysnmp command responder in this process, on 127.0.0.1.

It answers GET, GETNEXT and GETBULK with SNMPv3 (USM, ``authPriv``: SHA and AES-128 by default)
for the OIDs of a model of :mod:`wattwatch.sources.snmp`: the model's scalars, and ``outlets`` rows
of each of its tables. A built-in model (``apc_rpdu2``, ``ups_mib``) is served as a real device's
firmware serves it: at the OIDs and in the units its MIB defines (:data:`FIRMWARE`, written here
apart from the poller's maps), so an OID or a scale wrong in the poller's map reads a wrong value or
none, as it would on site; a model from a file (or a built-in one a file replaces) is served as
its map says. Values come from a seeded generator (mains voltage with a slow swing and noise, a load per
outlet, power = V·I·pf, a UPS at full charge on mains) or, with ``telemetry = "file"``, from a
telemetry file any reader of ``ingest`` takes, played one row per ``step_s`` (table row *k* plays
the file's *k*-th meter, or the meter named like the row's meter id; the scalars play the meter
named like the device, or the first), with the generator filling channels the file lacks.

It runs its own asyncio loop in a thread, so it starts in milliseconds and stops cleanly.
Nothing from a spec or a file is executed: values are numbers read from the file.

Faults (:meth:`Running.inject`, at run time; ``on=False`` or ``inject("clear")`` ends them):

- ``no_response``: requests are received and dropped (a dead agent, a cut link);
- ``wrong_credentials``: the agent's user gets other keys (a rotated secret): requests fail
  authentication (the poller counts ``auth_failures``);
- ``overload`` (``outlet=1``, ``amps=20.0``): an outlet draws ``amps`` (its power follows);
- ``on_battery`` (``drain_pct_per_min=5.0``): a UPS loses its input: input voltage 0, output
  source ``battery(5)`` (UPS-MIB upsOutputSource), battery charge falling at the given rate;
- ``malformed`` (``outlet=1``): that outlet's table cells answer text (``"n/a"``), not a number;
- ``delay`` (``ms=200``): every request is answered ``ms`` late (a slow agent, a congested link).

``start(name, spec, root)`` returns a :class:`Running` (``.endpoint``, ``.inject``, ``.view``,
``.stop``) as every device kind of ``wattwatch devices`` does.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from wattwatch.sources.snmp import (AUTH_PROTOCOLS, PRIV_PROTOCOLS, Model, _secret, load_models, master_key,
                                    meter_name, parse_model)

# What the simulated devices of the built-in models serve: channel = OID (from the MIB) and the
# unit of one count in the channel's unit (``scale``), as the device's firmware has them. Kept apart
# from sources.snmp.BUILTIN_MODELS (the poller's maps) on purpose: the tests read a device through
# the map, so a map that disagrees with the MIB fails them.
FIRMWARE: dict[str, dict] = {
    "ups_mib": {"scalars": {   # RFC 1628 UPS-MIB, upsObjects = 1.3.6.1.2.1.33.1
        "ups_battery_status_1": {"oid": "1.3.6.1.2.1.33.1.2.1.0"},            # upsBatteryStatus
        "ups_on_battery_s": {"oid": "1.3.6.1.2.1.33.1.2.2.0"},                # upsSecondsOnBattery, s
        "ups_runtime_s": {"oid": "1.3.6.1.2.1.33.1.2.3.0", "scale": 60.0},    # upsEstimatedMinutesRemaining, min
        "ups_battery_pct": {"oid": "1.3.6.1.2.1.33.1.2.4.0"},                 # upsEstimatedChargeRemaining, %
        "temp_c": {"oid": "1.3.6.1.2.1.33.1.2.7.0"},                          # upsBatteryTemperature, degC
        "v_l1_v": {"oid": "1.3.6.1.2.1.33.1.3.3.1.3.1"},                      # upsInputVoltage.1, RMS V
        "ups_mode_1": {"oid": "1.3.6.1.2.1.33.1.4.1.0"},                      # upsOutputSource
        "i_l1_a": {"oid": "1.3.6.1.2.1.33.1.4.4.1.3.1", "scale": 0.1},        # upsOutputCurrent.1, 0.1 A RMS
        "p_kw": {"oid": "1.3.6.1.2.1.33.1.4.4.1.4.1", "scale": 0.001},        # upsOutputPower.1, W
    }},
    "apc_rpdu2": {   # APC PowerNet-MIB, rPDU2 = 1.3.6.1.4.1.318.1.1.26
        "scalars": {"v_l1_v": {"oid": "1.3.6.1.4.1.318.1.1.26.6.3.1.6.1"}},  # rPDU2PhaseStatusVoltage.1, V
        "tables": {"outlet": {"meter": "{device}/outlet{index}", "columns": {  # rPDU2OutletMeteredStatusTable
            "i_l1_a": {"oid": "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6", "scale": 0.1},  # ...Current, 0.1 A
            "p_kw": {"oid": "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7", "scale": 0.001},  # ...Power, W
        }}},
    },
}

FAULTS = ("no_response", "wrong_credentials", "overload", "on_battery", "malformed", "delay")
_SPEC_KEYS = {"model", "models", "host", "port", "user", "auth_key", "auth_key_env", "priv_key", "priv_key_env",
              "auth_protocol", "priv_protocol", "outlets", "seed", "telemetry", "step_s", "voltage_v", "pf",
              "load_a", "engine_salt"}


class _Values:
    """Physical values per channel at a time: the generator, faults, optionally a telemetry file."""

    def __init__(self, name: str, model: Model, outlets: int, seed: int, voltage_v: float, pf: float,
                 load_a: tuple[float, float], telemetry=None, step_s: float = 1.0):
        self.name, self.model, self.outlets = name, model, outlets
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.voltage_v, self.pf = voltage_v, pf
        self.base_a = rng.uniform(load_a[0], load_a[1], outlets)
        self.phase = rng.uniform(0, 2 * np.pi, outlets)
        self.faults: dict[str, dict] = {}
        self.t0 = time.time()
        self.file = telemetry  # meter -> {channel: np.ndarray}
        self.step_s = step_s
        self.lock = threading.Lock()

    def _file_value(self, meter: str, row: int | None, channel: str):
        if not self.file:
            return None
        series = self.file.get(meter)
        if series is None:
            keys = sorted(self.file)
            if row is None:
                series = self.file[keys[0]]
            elif row - 1 < len(keys):
                series = self.file[keys[row - 1]]
        if series is None or channel not in series:
            return None
        arr = series[channel]
        k = int((time.time() - self.t0) // self.step_s) % len(arr)
        x = float(arr[k])
        return x if math.isfinite(x) else None

    def value(self, channel: str, meter: str, row: int | None) -> float | None:
        """``channel`` of the device (``row`` None) or of table row ``row`` now; None: text (malformed)."""
        with self.lock:
            faults = dict(self.faults)
        t = time.time()
        if row is not None and "malformed" in faults and faults["malformed"].get("outlet", 1) == row:
            return None
        f = self._file_value(meter, row, channel)
        if f is not None and not (channel.startswith(("i_", "p_")) and "overload" in faults):
            return f
        batt = faults.get("on_battery")
        noise = float(self.rng.normal(0, 1))
        v = self.voltage_v * (1 + 0.005 * math.sin(2 * math.pi * t / 600)) + 0.3 * noise
        fv = self._file_value(meter, row, "v_l1_v")
        if fv is None and row is not None:  # an outlet sees its PDU's supply
            fv = self._file_value(self.name, None, "v_l1_v")
        if fv is not None:
            v = fv
        if channel.startswith("v_"):
            return 0.0 if batt is not None else v
        k = (row - 1) % self.outlets if row is not None else None
        if k is None:  # the device's own total (a UPS's output)
            amps = float(np.sum(self.base_a))
        else:
            amps = self.base_a[k] * (1 + 0.08 * math.sin(2 * math.pi * t / 300 + self.phase[k]))
        amps = max(0.0, amps + 0.01 * noise)
        fi = self._file_value(meter, row, "i_l1_a")
        if fi is not None:
            amps = fi
        ov = faults.get("overload")
        if ov is not None and (k is None or ov.get("outlet", 1) == row):
            amps = float(ov.get("amps", 20.0))
        if channel.startswith("i_"):
            return amps
        if channel == "p_kw":
            return v * amps * self.pf / 1000.0
        if channel == "s_kva":
            return v * amps / 1000.0
        if channel == "pf":
            return self.pf
        charge = 100.0 if batt is None else \
            max(0.0, 100.0 - float(batt.get("drain_pct_per_min", 5.0)) * (t - batt["since"]) / 60.0)
        if channel == "ups_battery_pct":
            return charge
        if channel == "ups_battery_status_1":   # UPS-MIB upsBatteryStatus
            return 4.0 if charge <= 0 else 3.0 if charge < 25 else 2.0
        if channel == "ups_on_battery_s":
            return 0.0 if batt is None else t - batt["since"]
        if channel == "ups_runtime_s":          # 30 min at full charge and this load
            return 30 * 60 * charge / 100.0
        if channel == "ups_mode_1":
            return 5.0 if batt is not None else 3.0
        if channel == "temp_c":
            return 25.0 + 0.2 * noise
        return 0.0


class Running:
    """A started agent: ``endpoint`` (what a client needs), ``inject``, ``view``, ``stop``."""

    kind = "snmp"

    def __init__(self, name: str, spec: dict, root: Path | None):
        from wattwatch.sources import only

        only(spec, _SPEC_KEYS)
        self.name = name
        models = load_models(spec.get("models"), root)
        model = spec.get("model")
        if model not in models:
            raise ValueError(f"model: must be one of {', '.join(sorted(models))}, got {model!r}")
        self.model = models[model]
        # What the device serves: its firmware's OIDs for a built-in model the spec's maps leave as
        # built in; else the map it was given.
        self.served = parse_model(model, FIRMWARE[model], "firmware") \
            if model in FIRMWARE and self.model == load_models()[model] else self.model
        host = spec.get("host", "127.0.0.1")
        if host != "127.0.0.1":
            raise ValueError(f"host: a simulated device binds 127.0.0.1 only, got {host!r}")
        port = spec.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"port: must be 0 (a free port) .. 65535, got {port!r}")
        self.user = spec.get("user", "wattwatch")
        if not isinstance(self.user, str) or not self.user:
            raise ValueError("user: must be text")
        self.auth_protocol = str(spec.get("auth_protocol", "sha")).lower()
        self.priv_protocol = str(spec.get("priv_protocol", "aes")).lower()
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"auth_protocol: one of {', '.join(AUTH_PROTOCOLS)}")
        if self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"priv_protocol: one of {', '.join(PRIV_PROTOCOLS)}")
        self.auth_key = _secret(spec, "auth_key", "device") or None
        self.priv_key = _secret(spec, "priv_key", "device") or None
        if self.auth_key is None or (self.priv_protocol != "none" and self.priv_key is None):
            raise ValueError("auth_key and priv_key (or auth_key_env, priv_key_env) are required (SNMPv3 authPriv)")
        outlets = spec.get("outlets", 8)
        if isinstance(outlets, bool) or not isinstance(outlets, int) or not 0 < outlets <= 1024:
            raise ValueError(f"outlets: must be 1..1024, got {outlets!r}")
        load = spec.get("load_a", [0.3, 2.5])
        if not (isinstance(load, list) and len(load) == 2 and all(isinstance(x, (int, float)) for x in load)
                and 0 <= load[0] <= load[1]):
            raise ValueError(f"load_a: [low, high] amps per outlet, got {load!r}")
        step_s = float(spec.get("step_s", 1.0))
        if not step_s > 0:
            raise ValueError("step_s: must be > 0")
        telemetry = None
        if spec.get("telemetry") is not None:
            telemetry = _read_telemetry(spec["telemetry"], root)
        self.values = _Values(name, self.model, outlets, int(spec.get("seed", 0)), float(spec.get("voltage_v", 230.0)),
                              float(spec.get("pf", 0.95)), (float(load[0]), float(load[1])), telemetry, step_s)
        self.outlets = outlets
        # engine_salt: another value makes another engine ID (a replaced or factory-reset device)
        self.engine_salt = str(spec.get("engine_salt", ""))
        self.counters: Counter = Counter()
        self.muted = False
        self._oids = self._layout()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name=f"snmp-agent:{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"snmp device {name}: the agent did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"snmp device {name}: {self._error}")

    # ---------------------------------------------------------------- OID layout

    def _layout(self) -> list[tuple[tuple[int, ...], str, str, int | None, object]]:
        """Sorted (oid, channel, meter, row, column) the agent serves."""
        out = []
        for c in self.served.scalars:
            out.append((c.oid, c.channel, self.name, None, c))
        for t in self.served.tables:
            for row in range(1, self.outlets + 1):
                m = meter_name(t, self.name, (row,))
                for c in t.columns:
                    out.append((c.oid + (row,), c.channel, m, row, c))
        out.sort(key=lambda r: r[0])
        return out

    def _encode(self, channel: str, meter: str, row, col):
        from pysnmp.proto import rfc1902

        x = self.values.value(channel, meter, row)
        if x is None:
            return rfc1902.OctetString(b"n/a")
        raw = int(round((x - col.offset) / col.scale))
        return rfc1902.Integer32(max(raw, -(2 ** 31))) if raw < 0 else rfc1902.Gauge32(min(raw, 2 ** 32 - 1))

    # ---------------------------------------------------------------- agent thread

    def _serve(self) -> None:
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._engine = self._build(loop)
        except BaseException as exc:  # noqa: BLE001 - said by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                self._engine.close_dispatcher()
            except Exception:  # noqa: BLE001
                pass
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _build(self, loop):
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import cmdrsp
        from pysnmp.entity.rfc3413 import context as rcontext
        from pysnmp.proto import rfc1905
        from pysnmp.proto.api import v2c
        from pysnmp.smi import instrum

        agent = self

        class Transport(udp.UdpTransport):
            def datagram_received(self, datagram, transportAddress):
                agent.counters["datagrams"] += 1
                if agent.muted:
                    agent.counters["dropped"] += 1
                    return
                delay = agent.values.faults.get("delay")
                if delay is not None:  # a slow agent or link: the answer comes late
                    agent.counters["delayed"] += 1
                    loop.call_later(float(delay.get("ms", 200.0)) / 1000.0, super().datagram_received, datagram,
                                    transportAddress)
                    return
                super().datagram_received(datagram, transportAddress)

        class Controller(instrum.AbstractMibInstrumController):
            oids = [r[0] for r in agent._oids]
            by = {r[0]: r for r in agent._oids}

            def read_variables(self, *var_binds, **context):
                agent.counters["get"] += 1
                by = self.by
                out = []
                for oid, _ in var_binds:
                    r = by.get(tuple(oid))
                    out.append((oid, rfc1905.noSuchInstance if r is None else agent._encode(*r[1:])))
                return out

            def read_next_variables(self, *var_binds, **context):
                import bisect

                agent.counters["getnext"] += 1
                out = []
                for oid, _ in var_binds:
                    i = bisect.bisect_right(self.oids, tuple(oid))
                    if i >= len(self.oids):
                        out.append((oid, rfc1905.endOfMibView))
                    else:
                        r = agent._oids[i]
                        out.append((v2c.ObjectIdentifier(r[0]), agent._encode(*r[1:])))
                return out

        # A device keeps its engine ID across restarts (as a real agent does; pysnmp counts the
        # boots): format 5 (octets), from the device name and port.
        import hashlib

        from pysnmp.proto import rfc1902

        seed = f"{self.name}:{self.port}:{self.engine_salt}".encode()
        eid = b"\x80\x00\x1f\x88\x05" + hashlib.sha1(seed).digest()[:12]
        e = engine.SnmpEngine(snmpEngineID=rfc1902.OctetString(eid))
        config.add_transport(e, udp.DOMAIN_NAME, Transport(loop=loop).open_server_mode(sock=self._sock))
        self._add_user(e, self.auth_key, self.priv_key)
        config.add_vacm_user(e, 3, self.user, "authPriv" if self.priv_protocol != "none" else "authNoPriv",
                             (1, 3, 6), (1, 3, 6))
        ctx = rcontext.SnmpContext(e)
        ctx.unregister_context_name(v2c.OctetString(b""))  # the default context serves our controller
        ctx.register_context_name(v2c.OctetString(b""), Controller())
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder, cmdrsp.BulkCommandResponder):
            responder(e, ctx)
        e.transport_dispatcher.job_started(1)
        return e

    def _add_user(self, e, auth_key, priv_key) -> None:
        from pysnmp.entity import config

        auth = {"sha": config.USM_AUTH_HMAC96_SHA, "sha224": config.USM_AUTH_HMAC128_SHA224,
                "sha256": config.USM_AUTH_HMAC192_SHA256, "sha384": config.USM_AUTH_HMAC256_SHA384,
                "sha512": config.USM_AUTH_HMAC384_SHA512}[self.auth_protocol]
        priv = {"aes": config.USM_PRIV_CFB128_AES, "aes128": config.USM_PRIV_CFB128_AES,
                "aes192": config.USM_PRIV_CFB192_AES, "aes256": config.USM_PRIV_CFB256_AES,
                "none": config.USM_PRIV_NONE}[self.priv_protocol]
        master = config.USM_KEY_TYPE_MASTER
        a = master_key(auth_key, self.auth_protocol)
        if priv == config.USM_PRIV_NONE:
            config.add_v3_user(e, self.user, auth, a, authKeyType=master)
        else:
            config.add_v3_user(e, self.user, auth, a, priv, master_key(priv_key, self.auth_protocol),
                               authKeyType=master, privKeyType=master)

    def _in_loop(self, fn) -> None:
        """Run ``fn()`` in the agent's thread and wait for it."""
        done = threading.Event()
        err: list[BaseException] = []

        def call():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001
                err.append(exc)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(call)
        done.wait(10)
        if err:
            raise err[0]

    # ---------------------------------------------------------------- the device interface

    @property
    def endpoint(self) -> dict:
        return {"kind": "snmp", "host": "127.0.0.1", "port": self.port, "user": self.user,
                "auth_protocol": self.auth_protocol, "priv_protocol": self.priv_protocol, "model": self.model.name,
                "outlets": self.outlets if self.model.tables else 0}

    def meter_ids(self) -> list[str]:
        """The meters a poller of this agent reads (the device, and one per table row)."""
        return sorted({r[2] for r in self._oids})

    def inject(self, fault: str, on: bool = True, **params) -> None:
        """Start (or with ``on=False`` end) a fault; ``"clear"`` ends every fault."""
        if fault == "clear":
            for f in sorted(set(self.values.faults) | ({"no_response"} if self.muted else set())):
                self.inject(f, on=False)
            return
        if fault not in FAULTS:
            raise ValueError(f"snmp device {self.name}: fault must be one of {', '.join(FAULTS)} or clear, "
                             f"got {fault!r}")
        allowed = {"overload": {"outlet", "amps"}, "on_battery": {"drain_pct_per_min"}, "malformed": {"outlet"},
                   "delay": {"ms"}}
        unknown = set(params) - allowed.get(fault, set())
        if unknown:
            raise ValueError(f"snmp device {self.name}: fault {fault}: unknown parameter(s) {sorted(unknown)}")
        if fault == "no_response":
            self.muted = bool(on)
        elif fault == "wrong_credentials":
            # The agent's keys change (or come back): a client with the old ones is refused.
            a, p = (self.auth_key, self.priv_key)
            if on:
                a, p = a[::-1] + "x", (p or "")[::-1] + "x"

            def rekey():
                from pysnmp.entity import config

                config.delete_v3_user(self._engine, self.user)
                self._add_user(self._engine, a, p if self.priv_protocol != "none" else None)
            self._in_loop(rekey)
        with self.values.lock:
            if on:
                self.values.faults[fault] = {**params, "since": time.time()}
            else:
                self.values.faults.pop(fault, None)
        self.counters[f"fault:{fault}:{'on' if on else 'off'}"] += 1

    def view(self) -> dict:
        usm = {}
        try:
            mib = self._engine.get_mib_builder()
            for sym in ("usmStatsWrongDigests", "usmStatsUnknownUserNames", "usmStatsDecryptionErrors",
                        "usmStatsNotInTimeWindows"):
                (obj,) = mib.import_symbols("__SNMP-USER-BASED-SM-MIB", sym)
                usm[sym] = int(obj.syntax)
        except Exception:  # noqa: BLE001 - counters only
            pass
        return {"name": self.name, "kind": self.kind, "port": self.port, "model": self.model.name,
                "faults": sorted(set(self.values.faults) | ({"no_response"} if self.muted else set())),
                **self.counters, **usm}

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        try:
            self._sock.close()
        except OSError:
            pass


def _read_telemetry(path, root) -> dict:
    """meter -> channel -> values in time order, from any file ``ingest`` reads."""
    from wattwatch import api
    from wattwatch.schema import KEY_COLUMNS
    from wattwatch.sources import resolve

    if not isinstance(path, str):
        raise ValueError("telemetry: must be a file path")
    p = resolve(path, root)
    if not p.exists():
        raise ValueError(f"telemetry {p}: no such file")
    frame = api.read_frame(p)
    frame = frame.sort_values(["meter_id", "ts"], kind="stable")
    out = {}
    for m, g in frame.groupby(frame["meter_id"].astype(str), sort=True):
        out[m] = {c: g[c].to_numpy(float) for c in g.columns if c not in KEY_COLUMNS}
    if not out:
        raise ValueError(f"telemetry {p}: no readings")
    return out


def start(name: str, spec: dict, root: Path | None = None) -> Running:
    """Start a simulated SNMPv3 agent on 127.0.0.1 (``port = 0``: a free port); see the module."""
    return Running(name, dict(spec), root)


# The demo's agents are on 127.0.0.1 only and live as long as the demo: fixed keys (no secret to
# keep), SNMPv3 authPriv with SHA and AES-128 as a real site would run it.
DEMO_KEYS = {"user": "wattwatch-demo", "auth_key": "demo-auth-key-1", "priv_key": "demo-priv-key-1",
             "auth_protocol": "sha", "priv_protocol": "aes"}


def demo_agents(root: Path | None = None) -> dict[str, Running]:
    """The demo's rack: a PDU (APC PowerNet-MIB, 4 outlets) and a UPS (RFC 1628 UPS-MIB)."""
    out: dict[str, Running] = {}
    try:
        out["pdu"] = start("pdu", {"model": "apc_rpdu2", "outlets": 4, "seed": 11, **DEMO_KEYS}, root)
        out["ups"] = start("ups", {"model": "ups_mib", "seed": 12, **DEMO_KEYS}, root)
    except BaseException:
        for r in out.values():
            r.stop()
        raise
    return out


def demo_source(agents, interval_s: float = 1.0) -> dict:
    """The ``[[sources]]`` table that polls ``agents`` (what :func:`demo_agents` started) over
    SNMPv3 authPriv: meters ``pdu`` and ``pdu/outlet1`` … and ``ups``."""
    agents = list(agents.values()) if isinstance(agents, dict) else list(agents)
    return {"type": "snmp", "name": "snmp", "interval_s": float(interval_s),
            "request_timeout_s": min(0.5, 0.4 * float(interval_s)), **DEMO_KEYS,
            "devices": [{"name": a.name, "host": "127.0.0.1", "port": a.port, "model": a.model.name} for a in agents]}
