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
restart), with the time they were signed at. A report acknowledged more than ``resign_after_s``
(240 s, below the head-end's 300 s window) after it was signed — by the meter's monotonic clock,
which a wrong wall clock does not move — is not taken as delivered (liv51): the broker passed on a
copy whose signed time a head-end that holds no report of this meter refuses as a replay, and before
this change the PUBACK marked it acknowledged and the event was never delivered. It is signed anew
(next counter, current time, same event) and published again, superseding the old one in the log,
as after a power cut; a head-end that took the old copy by its counter takes the new one as the same
alert. A report is signed anew at most ``RESIGN_MAX`` (3) times (rev51): a link or broker so slow
that every copy is acknowledged late would otherwise have the meter sign and send the same event
for as long as it runs; the last copy's late acknowledgement is taken as delivered, and said. One
thread signs late reports anew, in the order of their counters (a tamper report before its cleared
report: the head-end takes an event's highest counter as its status).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from wattwatch.atomicfile import atomic_file, fsync_dir
from wattwatch.edge.signing import Signer

_log = logging.getLogger("wattwatch.edge")

RESIGN_MAX = 3   # copies of one report signed anew after late acknowledgements (see the module)


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
            fsync_dir(self.path.parent)

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
        with atomic_file(self.path) as f:
            f.write(json.dumps({"counter": self.seq}).encode() + b"\n")
            for s in pending:
                f.write(json.dumps({"seq": s, "msg": self.records[s]}, separators=(",", ":")).encode() + b"\n")
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
                 clock=time.time, resign_after_s: float | None = 240.0):
        self.meter_id = meter_id
        self.signer = signer
        self.log = log
        # A plain substitution, not str.format: a format string from a config file could reach
        # attributes of the value (``{meter_id.__class__}``).
        self.topic = topic.replace("{meter_id}", meter_id)
        self.qos = int(qos)
        self.echo = echo
        self.clock = clock
        r = resign_after_s
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0):
            raise ValueError(f"resign_after_s must be a number of seconds above 0, got {resign_after_s!r}")
        self.resign_after_s = resign_after_s
        self.resigned = 0                      # reports acknowledged too late and signed anew
        self._born: dict[int, float] = {}      # seq -> time.monotonic() when it was signed
        self._copies: dict[int, int] = {}      # seq -> how many times its report was signed anew (when > 0)
        self._late: list[tuple[int, float, int]] = []   # (seq, age, copies) acknowledged late, to sign anew
        self._resigner: threading.Thread | None = None
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
        self._acked(seq)

    def _acked(self, seq: int) -> None:
        """The broker acknowledged report ``seq``: logged as delivered, unless that came so long
        after it was signed that a head-end may have refused its time (see the module)."""
        with self._lock:
            born = self._born.pop(seq, None)
            copies = self._copies.pop(seq, 0)
        age = time.monotonic() - born if born is not None else 0.0
        late = born is not None and self.resign_after_s is not None and age > self.resign_after_s
        if late and copies >= RESIGN_MAX:
            _log.error("%s: report %d acknowledged %.0f s after it was signed, the %d copies of its event before it "
                       "late too: taken as delivered (the link or the broker is this slow; a head-end that holds no "
                       "report of this meter may refuse its time)", self.meter_id, seq, age, copies)
        if not late or copies >= RESIGN_MAX:
            self.log.ack(seq)
            return
        # Not on paho's network thread: it holds its own locks here, and publish() takes them too.
        # One thread signs them anew, in the order of their counters (rev51): a thread each let a
        # tamper report's copy take a higher counter than its cleared report's, and the head-end
        # (an event's highest counter decides) turned the event back to tamper.
        with self._lock:
            self._late.append((seq, age, copies + 1))
            if self._resigner is None:
                self._resigner = threading.Thread(target=self._resign_all, daemon=True,
                                                  name=f"resign-{self.meter_id}")
                self._resigner.start()

    def _resign_all(self) -> None:
        while True:
            with self._lock:
                if not self._late:
                    self._resigner = None
                    return
                late, self._late = sorted(self._late), []
            for seq, age, copies in late:
                try:
                    self._resign(seq, age, copies)
                except Exception:  # noqa: BLE001 - (the log closed under it) the rest are still tried
                    _log.exception("%s: signing report %d anew failed: it stays pending (a restart sends it again)",
                                   self.meter_id, seq)

    def _resign(self, old: int, age: float, copies: int = 1) -> None:
        try:
            new = self.publish(self.log.records[old], _copies=copies)
        except Exception as exc:  # noqa: BLE001 - the report stays pending: a restart sends it again
            _log.error("%s: report %d acknowledged %.0f s after signing; signing it anew failed: %s", self.meter_id,
                       old, age, exc)
            return
        self.log.supersede(old, new["counter"])
        self.resigned += 1
        _log.warning("%s: report %d acknowledged %.0f s after it was signed (more than %g s: a head-end may have "
                     "refused its time): sent again as report %d", self.meter_id, old, age, self.resign_after_s,
                     new["counter"])

    def _send(self, seq: int, msg: dict) -> None:
        if self.echo is not None:
            self.echo(msg)
        if self.client is None:  # no broker: handed to echo (stdout) and the log only
            self.log.ack(seq)
            return
        payload = json.dumps(msg, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._born[seq] = time.monotonic()
        # publish() outside our lock: paho calls _on_publish holding its message lock, which
        # publish() takes too (holding ours across it could deadlock against a PUBACK).
        info = self.client.publish(self.topic, payload, qos=self.qos)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                early = True
            else:
                self._mids[info.mid] = seq
                early = False
        if early:
            self._acked(seq)

    def publish(self, event: dict, *, _copies: int = 0) -> dict:
        """Sign ``event`` with the next counter, log it (fsync), publish it; the signed message."""
        seq = self.log.next()
        if _copies:
            with self._lock:
                self._copies[seq] = _copies
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
