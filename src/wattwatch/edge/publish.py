"""Exception-only reporting: signed tamper events over MQTT (QoS 1, TLS), with a local log that
survives a power cut.

:class:`TamperLog` is a JSON-lines file. Before a message is handed to the network it is appended
(``{"seq": n, "msg": {...}}``) and fsync'd; when the broker acknowledges it (PUBACK) an
``{"ack": n}`` line follows, fsync'd too. The counter is the highest ``seq`` in the log, so it
never goes back after a restart. A line cut short by a power cut is dropped when the log is
opened (and the file truncated to the last whole line). Past ``compact_bytes`` (1 MiB) the log is
rewritten on opening as ``{"counter": n}`` and the unacknowledged messages (new file, fsync,
rename).

On start, :class:`Publisher` sends again every logged message without an ``ack``: signed anew with
the next counter and the current time (the head-end would refuse the old counter or an old time as
a replay) and the same event (``event``, ``cycle_start``): the head-end's alert id depends on the
event, not on the counter, so a message that did arrive before the power cut is the same alert.
While running, paho re-sends unacknowledged QoS 1 messages itself after a reconnect (a broker
restart).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from wattwatch.edge.signing import Signer


def _fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class TamperLog:
    def __init__(self, path: Path, compact_bytes: int = 1 << 20):
        self.path = Path(path)
        self.records: dict[int, dict] = {}
        self.acked: set[int] = set()
        self.seq = 0
        self._lock = threading.Lock()
        self.dropped_tail = 0
        if self.path.exists():
            self._load()
            if self.path.stat().st_size > compact_bytes:
                self._compact()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._f = open(self.path, "ab")
        if new:  # the file's name must survive a power cut too, not only its lines
            _fsync_dir(self.path.parent)

    def _load(self) -> None:
        data = self.path.read_bytes()
        good = 0
        pos = 0
        lineno = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:  # a line cut short by a power cut
                self.dropped_tail = len(data) - pos
                break
            lineno += 1
            line = data[pos:nl]
            pos = nl + 1
            try:
                rec = json.loads(line)
            except ValueError:
                raise ValueError(f"{self.path}: line {lineno}: not JSON: the tamper log is damaged") from None
            if not isinstance(rec, dict) or not rec.keys() & {"seq", "ack", "superseded", "counter"}:
                raise ValueError(f"{self.path}: line {lineno}: expected a record (seq/msg, ack, superseded or "
                                 "counter): the tamper log is damaged")
            for f in ("seq", "ack", "superseded", "counter"):
                v = rec.get(f, 1)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"{self.path}: line {lineno}: field {f!r}: expected a counter (an integer "
                                     f">= 0), got {v!r}: the tamper log is damaged"[:300])
            if "seq" in rec:
                if not isinstance(rec.get("msg"), dict):
                    raise ValueError(f"{self.path}: line {lineno}: field 'msg': expected the signed report (an "
                                     "object): the tamper log is damaged")
                self.records[rec["seq"]] = rec["msg"]
                self.seq = max(self.seq, rec["seq"])
            if "ack" in rec:
                self.acked.add(rec["ack"])
            if "superseded" in rec:
                self.acked.add(rec["superseded"])
            if "counter" in rec:
                self.seq = max(self.seq, rec["counter"])
            good = pos
        if good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    def _compact(self) -> None:
        """Rewrite the log as the counter and the unacknowledged messages (a new file, fsync'd,
        then renamed over the old one: a power cut leaves one or the other, whole)."""
        pending = sorted(s for s in self.records if s not in self.acked)
        tmp = self.path.with_name(self.path.name + ".compact")
        with open(tmp, "wb") as f:
            f.write(json.dumps({"counter": self.seq}).encode() + b"\n")
            for s in pending:
                f.write(json.dumps({"seq": s, "msg": self.records[s]}, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.records = {s: self.records[s] for s in pending}
        self.acked = set()

    def _write(self, rec: dict) -> None:
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        self._f.write(line)
        self._f.flush()
        os.fsync(self._f.fileno())

    def next(self) -> int:
        with self._lock:
            self.seq += 1
            return self.seq

    def append(self, seq: int, msg: dict) -> None:
        with self._lock:
            self.records[seq] = msg
            self._write({"seq": seq, "msg": msg})

    def ack(self, seq: int) -> None:
        with self._lock:
            if seq in self.acked:
                return
            self.acked.add(seq)
            self._write({"ack": seq})

    def supersede(self, old: int, new: int) -> None:
        with self._lock:
            self.acked.add(old)
            self._write({"superseded": old, "by": new})

    def pending(self) -> list[int]:
        with self._lock:
            return sorted(s for s in self.records if s not in self.acked)

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass


class Publisher:
    """Signs, logs and publishes events of one meter to ``meter/<id>/tamper``. ``client`` may be
    None (no broker configured: events are logged and handed to ``echo`` only)."""

    def __init__(self, meter_id: str, signer: Signer, log: TamperLog, *, host: str | None = None, port: int = 1883,
                 topic: str = "meter/{meter_id}/tamper", qos: int = 1, client_id: str | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 username: str | None = None, password: str | None = None, keepalive: int = 30, echo=None,
                 clock=time.time):
        self.meter_id = meter_id
        self.signer = signer
        self.log = log
        # A plain substitution, not str.format: a format string from a config file could reach
        # attributes of the value (``{meter_id.__class__}``).
        self.topic = topic.replace("{meter_id}", meter_id)
        self.qos = int(qos)
        self.echo = echo
        self.clock = clock
        self._mids: dict[int, int] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self.client = None
        if host:
            import ssl

            import paho.mqtt.client as mqtt

            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"wattwatch-edge-{meter_id}",
                            clean_session=False)
            if tls_ca or tls_cert:
                c.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key, cert_reqs=ssl.CERT_REQUIRED,
                          tls_version=ssl.PROTOCOL_TLS_CLIENT)
            if username:
                c.username_pw_set(username, password)
            c.max_inflight_messages_set(100)
            c.max_queued_messages_set(0)
            c.on_publish = self._on_publish
            c.reconnect_delay_set(0.2, 5)
            c.connect_async(host, int(port), keepalive=keepalive)
            c.loop_start()
            self.client = c

    def _on_publish(self, client, userdata, mid, reason=None, properties=None):
        with self._lock:
            seq = self._mids.pop(mid, None)
            if seq is None:          # the PUBACK beat publish() returning its mid
                self._early.add(mid)
                return
        self.log.ack(seq)

    def _send(self, seq: int, msg: dict) -> None:
        if self.echo is not None:
            self.echo(msg)
        if self.client is None:  # no broker: handed to echo (stdout) and the log only
            self.log.ack(seq)
            return
        payload = json.dumps(msg, separators=(",", ":"), allow_nan=False)
        with self._lock:
            info = self.client.publish(self.topic, payload, qos=self.qos)
            if info.mid in self._early:
                self._early.discard(info.mid)
                early = True
            else:
                self._mids[info.mid] = seq
                early = False
        if early:
            self.log.ack(seq)

    def publish(self, event: dict) -> dict:
        """Sign ``event`` with the next counter, log it (fsync), publish it; the signed message."""
        seq = self.log.next()
        body = {k: v for k, v in event.items() if k not in ("sig", "alg", "counter", "ts", "v")}
        body.update(v=1, meter_id=self.meter_id, counter=seq, ts=round(float(self.clock()), 3))
        msg = self.signer.sign(body)
        self.log.append(seq, msg)
        self._send(seq, msg)
        return msg

    def resend_pending(self) -> int:
        """Send again what the broker never acknowledged (signed anew; see the module)."""
        n = 0
        for old in self.log.pending():
            msg = self.log.records[old]
            new = self.publish(msg)
            self.log.supersede(old, new["counter"])
            n += 1
        return n

    def unacked(self) -> int:
        return len(self.log.pending())

    def wait_acked(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if not self.log.pending():
                return True
            time.sleep(0.02)
        return not self.log.pending()

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        self.log.close()
