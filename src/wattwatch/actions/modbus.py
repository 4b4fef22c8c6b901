"""``type = "modbus_write"``: write a coil or a holding register (shed a load, raise a fan's speed)
through pymodbus's asyncio client, only what an allow-list permits, and read it back.

Keys (besides the common ones of :mod:`wattwatch.actions.base`)::

    host = "10.0.0.7"
    port = 502
    framing = "socket"              # Modbus/TCP; "rtu": RTU frames over TCP (serial-to-Ethernet
                                    # gateways, often port 2000)
    target = "coil"                 # or "holding" (a holding register, 0..65535)
    address = 16                    # 0-based protocol address
    device_id = 1                   # Modbus unit id (default 1) ...
    devices = { "rack-a-*" = 3, "rack-b-*" = 4 }   # ... or per meter glob (first match); a meter
                                    # that matches none is refused
    value = false                   # a number/bool, or per severity: { warning = 60, critical = 100 }
                                    # (a severity left out is not acted on)
    ended_value = true              # written on `ended` events (e.g. restore the load); needs on = [.., "ended"]
    withdrawn_value = true          # written on `withdrawn` events (on = [.., "withdrawn"]); without it a
                                    # withdrawal writes nothing (logged "nothing written"): see below
    allow = [ { device_id = 3, target = "coil", address = 16, values = [false, true] },
              { device_id = 1, target = "holding", address = 100, min = 0, max = 100 } ]
    readback = true                 # read the address back and compare (default true)
    timeout_s = 2                   # per request
    retries = 2                     # attempts after the first (connection refused, timeout,
    backoff_s = 0.2                 # exception response, read-back mismatch), waiting backoff_s * 2**(k-1)

The allow-list is required. Every write the action may make (each severity's ``value`` and
``ended_value`` on each device of ``device_id``/``devices``) must be on it, or the config itself is
refused naming the key and the value: a write off the list would otherwise be found only when due,
in the incident it was meant for. Each write is still checked just before it is done (dry run
included): a device, address or value not listed is ``refused``, logged, and nothing is sent.

A **withdrawn** alert (le3: late readings showed there was no fault, or a provisional alert's final
verdict withdrew it; :mod:`wattwatch.actions.base`) writes nothing by default: a load shed for it stays
shed until someone on site restores it (it may have been shed for hours; switching it back unattended,
perhaps a day later when a gateway's backlog arrives, is a decision for the facility team, not for a
late reading). With ``on = [.., "withdrawn"]`` the withdrawal is logged with the alert (``ok``,
"nothing written") so whoever restores it sees why (rle3: and takes no share of ``rate_limit``, which
would refuse a real shed in its place); ``withdrawn_value`` makes it write that value
(allow-listed as every value). An alert withdrawn while still open also ends: ``ended_value`` (when
``on`` has ``ended``) is written then, as at any end.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from pathlib import Path

from wattwatch.actions.base import COMMON, Action, Refused, Result, flag, number, only, text
from wattwatch.codes import SEVERITIES

TARGETS = ("coil", "holding")


def _value(v, key: str, target: str):
    """A value for ``target`` (bools and 0/1 for a coil; 0..65535 for a holding register)."""
    if target == "coil":
        if isinstance(v, bool) or v in (0, 1):
            return bool(v)
        raise ValueError(f"{key}: a coil takes true/false (or 0/1), got {v!r}")
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError(f"{key}: a holding register takes an integer 0..65535, got {v!r}")
    return int(v)


class AllowEntry:
    def __init__(self, d, k: int):
        where = f"allow[{k}]"
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be a table (device_id, target, address, values or min/max)")
        only(d, {"device_id", "target", "address", "values", "min", "max"}, where)
        self.device_id = number(d, "device_id", 1, 0, 255, True, f"{where}.")
        self.target = d.get("target")
        if self.target not in TARGETS:
            raise ValueError(f"{where}.target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if "address" not in d:
            raise ValueError(f"{where}.address is required")
        self.address = number(d, "address", 0, 0, 65535, True, f"{where}.")
        self.values = None
        if "values" in d:
            vs = d["values"]
            if not isinstance(vs, list) or not vs:
                raise ValueError(f"{where}.values must be a non-empty list")
            self.values = [_value(v, f"{where}.values", self.target) for v in vs]
        self.min = self.max = None
        if "min" in d or "max" in d:
            if self.target == "coil":
                raise ValueError(f"{where}: min/max are for holding registers; a coil lists its values")
            self.min = _value(d.get("min", 0), f"{where}.min", "holding")
            self.max = _value(d.get("max", 65535), f"{where}.max", "holding")
        if self.values is None and self.min is None:
            raise ValueError(f"{where}: give the allowed values (values = [...], or min/max for a register)")

    def allows(self, device_id: int, target: str, address: int, value) -> bool:
        if (device_id, target, address) != (self.device_id, self.target, self.address):
            return False
        if self.values is not None and value in self.values and type(value) is type(self.values[0]):
            return True
        return self.min is not None and not isinstance(value, bool) and self.min <= value <= self.max


class ModbusWriteAction(Action):
    kind = "modbus_write"
    provisional_default = False   # switches loads / runs anything: waits for final alerts
    never_on = {"stopped": "a provisional alert whose verdict is pending switches no load"}

    def __init__(self, name: str, spec: dict, root: Path | None):
        super().__init__(name, spec)
        only(spec, COMMON | {"host", "port", "framing", "target", "address", "device_id", "devices", "value",
                             "ended_value", "withdrawn_value", "allow", "readback", "timeout_s", "retries",
                             "backoff_s"})
        self.host = text(spec, "host", required=True)
        self.port = number(spec, "port", 502, 1, 65535, True)
        self.framing = spec.get("framing", "socket")
        if self.framing not in ("socket", "rtu"):
            raise ValueError(f"framing must be socket (Modbus/TCP) or rtu (RTU over TCP), got {self.framing!r}")
        self.target = spec.get("target")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if "address" not in spec:
            raise ValueError("address is required")
        self.address = number(spec, "address", 0, 0, 65535, True)
        self.device_id = number(spec, "device_id", 1, 0, 255, True)
        devices = spec.get("devices")
        self.devices: list[tuple[str, int]] | None = None
        if devices is not None:
            if "device_id" in spec:
                raise ValueError("give device_id or devices (per meter), not both")
            if not isinstance(devices, dict) or not devices:
                raise ValueError("devices must be a table of meter glob = unit id")
            self.devices = [(g, number({g: v}, g, 1, 0, 255, True, "devices.")) for g, v in devices.items()]
        if "value" not in spec:
            raise ValueError("value is required (what to write)")
        self.value = self._values(spec["value"], "value")
        self.ended_value = self._values(spec["ended_value"], "ended_value") if "ended_value" in spec else None
        if "ended" in self.on and self.ended_value is None:
            raise ValueError("on includes \"ended\": give ended_value (what to write when the alert ends)")
        self.withdrawn_value = self._values(spec["withdrawn_value"], "withdrawn_value") \
            if "withdrawn_value" in spec else None
        if self.withdrawn_value is not None and "withdrawn" not in self.on:
            raise ValueError("withdrawn_value is written on withdrawn events: add \"withdrawn\" to on")
        allow = spec.get("allow")
        if not isinstance(allow, list) or not allow:
            raise ValueError("allow is required: a list of { device_id, target, address, values | min/max }")
        self.allow = [AllowEntry(d, k) for k, d in enumerate(allow)]
        self.readback = flag(spec, "readback", True)
        self.timeout_s = number(spec, "timeout_s", 2.0, 0.01, 600.0)
        self.retries = number(spec, "retries", 2, 0, 20, True)
        self.backoff_s = number(spec, "backoff_s", 0.2, 0.0, 600.0)
        # Every write this action may make (each severity's value on each device) must be allowed: one
        # off the list would be refused only when due, in the incident it was configured for.
        devs = [(None, self.device_id)] if self.devices is None else self.devices
        for key, vals in (("value", self.value), ("ended_value", self.ended_value),
                          ("withdrawn_value", self.withdrawn_value)):
            for sev, v in (vals or {}).items():
                for glob, d in devs:
                    if not self._allowed(d, v):
                        where = key if not isinstance(spec[key], dict) else f"{key}.{sev}"
                        dev = f"device {d}" if glob is None else f"device {d} (devices {glob!r})"
                        raise ValueError(f"{where}: writing {v!r} to {self.target} {self.address} on {dev} is not "
                                         "on the allow-list: allow it, or change the value (every write this action "
                                         "may make must be allowed)")

    def _values(self, v, key: str) -> dict:
        """severity -> value."""
        if isinstance(v, dict):
            bad = set(v) - set(SEVERITIES)
            if bad:
                raise ValueError(f"{key}: keys must be severities ({', '.join(SEVERITIES)}), got {sorted(bad)}")
            return {s: _value(x, f"{key}.{s}", self.target) for s, x in v.items()}
        x = _value(v, key, self.target)
        return {s: x for s in SEVERITIES}

    def _allowed(self, device_id: int, value) -> bool:
        return any(e.allows(device_id, self.target, self.address, value) for e in self.allow)

    def applies(self, alert, event: str) -> bool:
        """A value per severity that leaves a severity out does not act on it."""
        if event == "stopped":   # (pc) a provisional alert's condition ended, no verdict yet: no switching
            return False
        if event == "withdrawn":   # (le3) logged, written only with withdrawn_value (see the module)
            return self.withdrawn_value is None or alert.severity in self.withdrawn_value
        return alert.severity in (self.ended_value if event == "ended" else self.value)

    def sends(self, alert, event: str) -> bool:
        return event != "withdrawn" or self.withdrawn_value is not None

    def plan(self, alert, event: str) -> tuple[int, object]:
        """(unit id, value) for this alert and event; Refused when not allowed."""
        if self.devices is None:
            dev = self.device_id
        else:
            dev = next((d for g, d in self.devices if fnmatch.fnmatchcase(alert.meter_id, g)), None)
            if dev is None:
                raise Refused(f"meter {alert.meter_id!r} matches no entry of devices")
        vals = {"ended": self.ended_value, "withdrawn": self.withdrawn_value}.get(event, self.value)
        if alert.severity not in vals:
            raise Refused(f"no value for severity {alert.severity!r}")
        v = vals[alert.severity]
        if not self._allowed(dev, v):
            raise Refused(f"{self.target} {self.address} = {v!r} on device {dev} at {self.host}:{self.port} "
                          "is not on the allow-list; nothing written")
        return dev, v

    def perform(self, alert, event: str, dry_run: bool) -> Result:
        if event == "withdrawn" and self.withdrawn_value is None:
            return Result("ok", "nothing written: the alert was withdrawn "
                          f"({alert.evidence.get('withdrawn') or 'no reason given'}); what the last write left on "
                          f"{self.target} {self.address} stays until someone on site changes it "
                          "(withdrawn_value writes a value on withdrawals)", 0)
        dev, v = self.plan(alert, event)
        what = f"{self.target} {self.address} = {v!r} on device {dev} at {self.host}:{self.port}"
        if dry_run:
            return Result("ok", f"dry run: would write {what}", 0)
        why = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                time.sleep(self.backoff_s * 2 ** (attempt - 2))
            try:
                detail = asyncio.run(self._write(dev, v))
                return Result("ok", f"wrote {what}{detail}", attempt)
            except Exception as exc:  # noqa: BLE001 - pymodbus raises several kinds; all are retried
                why = f"{type(exc).__name__}: {exc}"
        return Result("failed", f"{what}: {why} after {self.retries + 1} attempt(s)", self.retries + 1)

    async def _write(self, dev: int, v) -> str:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusTcpClient

        client = AsyncModbusTcpClient(self.host, port=self.port, framer=FramerType(self.framing),
                                      timeout=self.timeout_s, retries=0, reconnect_delay=0)
        try:
            if not await client.connect():
                raise ConnectionError(f"cannot connect to {self.host}:{self.port}")
            if self.target == "coil":
                r = await client.write_coil(self.address, v, device_id=dev)
            else:
                r = await client.write_register(self.address, v, device_id=dev)
            if r.isError():
                raise IOError(f"write refused by the device: {r}")
            if not self.readback:
                return " (no read-back)"
            if self.target == "coil":
                r = await client.read_coils(self.address, count=1, device_id=dev)
                got = None if r.isError() else bool(r.bits[0])
            else:
                r = await client.read_holding_registers(self.address, count=1, device_id=dev)
                got = None if r.isError() else int(r.registers[0])
            if r.isError():
                raise IOError(f"read-back refused by the device: {r}")
            if got != v:
                raise IOError(f"read-back gave {got!r}, wrote {v!r}")
            return f"; read back {got!r}"
        finally:
            client.close()


def from_spec(name: str, spec: dict, root: Path | None = None) -> ModbusWriteAction:
    return ModbusWriteAction(name, spec, root)
