"""Head-end for edge meters: signed tamper reports (and telemetry) over MQTT, ``type = "tamper"``.

::

    [[sources]]
    type = "tamper"
    host = "127.0.0.1"
    port = 8883
    tls_ca = "ca.pem"                 # and tls_cert / tls_key for a client certificate
    topics = ["meter/+/tamper"]       # reports; any other topic is telemetry (as type = "mqtt")
    telemetry = ["meter/+/telemetry"]
    meter = "topic:1"                 # telemetry's meter (as type = "mqtt")
    keys = { "M-17" = "keys/M-17.key", "M-18" = "keys/M-18.pub.pem" }
    keys_dir = "keys"                 # or <meter>.key (hex HMAC) / <meter>.pub.pem (Ed25519) here
    window_s = 300                    # a report signed further than this from now is refused
    reorder = 64                      # counters accepted out of order up to this far back
    state_file = "he.counters.json"   # the counter record (default <config>.<name>.counters.json beside it)
    first_contact = true              # a meter's first report ever (counter 1) is taken whatever its time

Every report on ``meter/<id>/tamper`` is checked in this order, and the first failure decides:

- **malformed**: larger than ``max_bytes``, not JSON, not an object, a field missing or of the
  wrong type (``counter`` an integer, ``ts`` a number, ``status`` one of the known ones ...);
- **forged**: the topic's meter differs from the signed ``meter_id``, no key for the meter, an
  algorithm other than the meter's key's, or a signature that does not verify (a tampered field
  is a signature that does not verify);
- **replayed**: a ``counter`` already used by another report; a counter more than ``reorder`` (64)
  below the highest accepted from that meter (an anti-replay window as in IPsec: a meter's reports
  may arrive out of order after a reconnect, a re-sent one overtaken by a newer one, and are still
  taken); or ``ts`` further than ``window_s`` from now from a meter none of whose reports the
  head-end holds, or with a counter below the highest accepted from it (nothing vouches for such a
  counter: the head-end may never have held it, after a lost checkpoint say; only the time says the
  report is not old).
- **duplicate**: the exact copy of a report already accepted (a QoS 1 redelivery after a lost
  acknowledgement looks exactly like this) is refused and counted as ``duplicate``: it cannot
  change anything, and is not a security event.

The counter, not the wall clock, is the replay protection once a meter is known (liv51): the meter
persists it and never reuses it, and the head-end keeps (and checkpoints) the window of counters it
accepted. A report of a known meter signed further than ``window_s`` from now whose counter is
above the highest accepted from it is taken — a meter whose clock is off, or a report delayed past the window (paho re-sending an
unacknowledged report after a long broker outage) — and raises ``WARN_CLOCK_SKEW`` for the meter
(one per meter and hour, detector ``edge_clock``, counted ``clock_skew``: the signed time, when it
arrived and the offset), never a security event. Before, such a report was refused as replayed while
the broker had acknowledged it to the meter, and the tamper event was never delivered.

(edg58) **First contact.** A meter whose clock is wrong from its very first report had no earlier
report to vouch for its counter and was refused for ever. Its report with counter 1 — the first its
tamper log ever signed — from a meter the head-end has never taken a report of (neither in the
checkpoint nor in the counter record below), signature verified, is taken with ``WARN_CLOCK_SKEW``
(``first_contact`` in the evidence); the meter is then known and its counter decides. The exposure is
that one report: a recording of it can be replayed only into a head-end that never heard from the
meter, where the event it carries did happen (its alert carries the meter's own event time, the
clock alert the offset). A later counter of an unknown meter is still judged by the time (a
recording of any of its reports would look the same). ``first_contact = false`` turns it off.

(edg58) **Counter record.** The checkpoint (each meter's window of counters) lives in the store; a
store restored from an old backup holds counters below the meter's, and recorded reports signed
since the backup have counters above them: liv51's rule took them by their counter. The head-end
therefore keeps ``state_file``: for each meter the highest counter it took, written (new file,
fsync, rename) before each checkpoint, only ever raised. Kept outside the store (and its backups),
it is not rolled back by a restore: a report with a counter up to the record's that the checkpoint
does not hold is refused as ``replayed`` outside the window (and the record's own latest counter
inside it too); at the first report after such a restore the head-end logs which meters' checkpoint
is behind the record (counter ``checkpoint_behind``) and that nothing is to be done if the restore
was intended. A damaged record is an error naming the file (it is what refuses those replays).
(rev58) A report taken whose alert is not in the store yet (its step has not committed it, its
PUBACK is held) goes into neither the record nor the checkpoint until it is: the broker sends it again
after a crash or a stop, and it is then taken, not refused. The record must be a regular file of at
most 64 MiB; a running source holds it (``flock`` on ``<state_file>.lock``): one record per source.
(edg59) With each meter's counter the record keeps the digest of the report at that counter: the
broker's redelivery of that very report (its alert stored, its PUBACK not sent when the watcher
died after the record and before the checkpoint) is a ``duplicate``, not a replay; any other report
at or below the recorded counter is refused as before. A record without digests (edg58/rev58's)
loads as before and gains them as counters rise.

Rejections are counted (``counters``: ``malformed``, ``forged``, ``replayed``) and become
``ALRM_SECURITY_EVENT`` alerts (one per meter and hour, its counts per reason growing; detector
``edge_security``), never tamper alerts. A report that passes becomes its alert as it arrives:
``ERR_IMBAL_LIMIT_EXCEEDED`` (entering tamper, grown by the ``cleared`` report) or
``STATUS_SIGNAL_NOISY``, with the meter's evidence; the alert id follows the event's first cycle,
so a report sent again after a power cut is the same alert. Reports of one event may arrive out
of order (the anti-replay window takes them): the one with the highest counter decides the
alert, so a ``tamper`` report overtaken by its ``cleared`` one does not turn the alert back to
tamper (paho can send a report published while the connection comes up after the next one).
The window of accepted counters per meter, and the newest counter of each of its latest events,
are part of the source's checkpointed position.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from wattwatch import atomicfile
from wattwatch.alerts.model import Alert, log_safe
from wattwatch.edge.signing import METER_ID, digest, load_key, verify
from wattwatch.sources.base import Batch, canonical, log
from wattwatch.sources.mqtt import MqttSource, logged_nth, password_from_env, tls_paths

SECURITY_CODE = "ALRM_SECURITY_EVENT"
CLOCK_CODE = "WARN_CLOCK_SKEW"
STATUSES = {"tamper", "cleared", "signal_noisy", "signal_ok", "report"}
# (rle) The reports that put a meter in a state its next report of the same event ends (``cleared``,
# ``signal_ok``): their alert is ongoing until then (InfluxDB's ``state``: sinks/influx.py).
ONGOING = frozenset({"tamper", "signal_noisy"})
REASONS = ("malformed", "forged", "replayed")
RECORD_MAX_BYTES = 64 * 2**20   # (rev58) the counter record read at most (~700,000 meters with digests)
DIGEST = re.compile(r"[0-9a-f]{64}\Z")   # (edg59) a report's digest in the record (SHA-256, hex)


def ongoing(alert) -> bool:
    """Whether a head-end alert says its meter is still in the state it reports (a tamper or noisy
    signal not yet cleared by the meter); an hour's refused reports or clock skew are not."""
    ev = alert.evidence
    return ev.get("source") == "edge" and ev.get("status") in ONGOING


class _Token(list):
    """(rev58) A batch's token: the MQTT acknowledgements (a list, as :class:`MqttSource`'s) and
    ``taken``, the (meter, counter) of the reports whose alerts the batch carries."""

    taken: tuple = ()


class Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _offset(off: float) -> str:
    """``off`` (signed time minus now) as words: "612 s before it arrived" / "612 s ahead"."""
    return f"{abs(off):,.0f} s before it arrived" if off < 0 else f"{off:,.0f} s ahead of the head-end's clock"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TamperSource(MqttSource):
    kind = "tamper"

    def __init__(self, name: str, *, keys: dict | None = None, keys_dir: str | None = None, window_s: float = 300.0,
                 max_bytes: int = 65536, telemetry=(), topics=("meter/+/tamper",), clock=None, reorder: int = 64,
                 state_file: str | None = None, first_contact: bool = True, **kw):
        tel = [telemetry] if isinstance(telemetry, str) else list(telemetry)
        super().__init__(name, topics=list(topics) + tel, **kw)
        self.tamper_topics = [topics] if isinstance(topics, str) else list(topics)
        self.keys: dict[str, tuple] = {}
        for m, path in (keys or {}).items():
            if not METER_ID.match(str(m)):
                raise ValueError(f"keys: meter id {m!r} must be letters, digits, '.', '_' or '-'")
            self.keys[str(m)] = load_key(Path(path), private=False)
        self.keys_dir = Path(keys_dir) if keys_dir else None
        if not self.keys and self.keys_dir is None:
            raise ValueError(f"source {name}: give keys (meter -> key file) or keys_dir")
        if self.keys_dir is not None and not self.keys_dir.is_dir():
            raise ValueError(f"keys_dir {self.keys_dir}: no such folder")
        for k, v, low in (("window_s", window_s, 1), ("reorder", reorder, 1), ("max_bytes", max_bytes, 256)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low \
                    or (k != "window_s" and v != int(v)):
                raise ValueError(f"{k} must be {'a number' if k == 'window_s' else 'an integer'} >= {low}, got {v!r}")
        self.reorder = int(reorder)
        self.window_s = float(window_s)
        self.max_bytes = int(max_bytes)
        # meter -> {counter: digest} of the last ``reorder`` counters accepted (the anti-replay window)
        self.seen: dict[str, dict[int, str]] = {}
        self._alerts: list[Alert] = []
        # meter -> {alert id: highest counter of a report that made that alert}, the latest
        # ``reorder`` events per meter (insertion order): an older report of the event is stale
        self.newest: dict[str, dict[str, int]] = {}
        self._security: dict[tuple, dict] = {}
        self._skew: dict[tuple, dict] = {}
        self._tally_hour = -math.inf   # the hour the tallies above were last pruned at
        self._state_lock = threading.Lock()
        self.clock = clock or time.time
        if not isinstance(first_contact, bool):
            raise ValueError(f"first_contact must be true or false, got {first_contact!r}")
        self.first_contact = first_contact
        # (edg58) meter -> the highest counter this head-end ever accepted from it, as kept in
        # ``state_file`` (outside the store: a store restored from a backup does not roll it back)
        self.state_file = Path(state_file) if state_file else None
        self.record: dict[str, int] = {}
        self._recorded: dict[str, int] = {}    # what the file holds now (written when it changes)
        # (edg59) meter -> the digest of the report at its counter in ``record`` (a record written
        # before edg59 has none): that very report again is a ``duplicate``, not a replay
        self.digests: dict[str, str] = {}
        self._recorded_digests: dict[str, str] = {}
        self._behind_checked = False
        self.behind: dict[str, tuple[int, int]] = {}   # meter -> (checkpoint's latest, record's latest)
        # (rev58) meter -> counters of reports taken whose alerts are not in the store yet (their
        # step has not committed them, their PUBACK is held): kept out of the record and the
        # checkpoint, so the broker's redelivery after a crash or a stop is taken, not refused
        self._pending: dict[str, set[int]] = {}
        self._taken: list[tuple[str, int]] = []       # those of the alerts waiting in ``_alerts``
        self._record_lock = threading.Lock()
        self._record_fd: int | None = None            # the flock held on ``<state_file>.lock`` while running
        if self.state_file is not None:
            self.record, self.digests = self._read_record(self.state_file)
            self._recorded, self._recorded_digests = dict(self.record), dict(self.digests)

    # ------------------------------------------------------------------------ routing

    def _is_tamper(self, topic: str) -> bool:
        from paho.mqtt.client import topic_matches_sub

        return any(topic_matches_sub(t, topic) for t in self.tamper_topics)

    def _on_message(self, client, userdata, msg):
        if not self._is_tamper(msg.topic):
            return super()._on_message(client, userdata, msg)
        self.counters["reports"] += 1
        alerts, key = self._take(msg.topic, msg.payload, hold=True)
        with self._lock:
            self._alerts.extend(alerts)
            if key is not None and alerts:
                self._taken.append(key)
            if msg.qos > 0:
                if alerts:
                    self._acks.append((msg.mid, msg.qos))
                else:
                    client.ack(msg.mid, msg.qos)
        if key is not None and not alerts:   # nothing to store (acknowledged at once): taken now
            self._release([key])

    def drain(self):
        # (rev58) Readings, alerts, acknowledgements and the reports taken, under one lock: taken in
        # two goes, a report arriving between them had its PUBACK sent with this batch and its alert
        # stored with the next one (lost if the watcher died in between).
        with self._lock:
            alerts, self._alerts = self._alerts, []
            taken, self._taken = self._taken, []
            rows, acks = self._rows, self._acks
            self._rows, self._acks = [], []
        if not rows and not alerts:
            return None
        token = _Token(acks)
        token.taken = tuple(taken)
        if rows:
            self.counters["readings"] += len(rows)
        frame = canonical(pd.DataFrame(rows), self.name) if rows else pd.DataFrame()
        return Batch(self.name, frame, arrived=time.monotonic(), token=token, alerts=alerts)

    def committed(self, token) -> None:
        """The batch is stored: acknowledge its messages, and its reports may go into the counter
        record and the checkpoint now."""
        super().committed(token)
        self._release(getattr(token, "taken", ()))

    def _release(self, keys) -> None:
        with self._state_lock:
            for m, c in keys:
                held = self._pending.get(m)
                if held is not None:
                    held.discard(c)
                    if not held:
                        del self._pending[m]

    # ------------------------------------------------------------------------ checks

    def _key(self, meter: str):
        k = self.keys.get(meter)
        if k is None and self.keys_dir is not None:
            for fname in (f"{meter}.key", f"{meter}.pub.pem"):
                p = self.keys_dir / fname
                if p.is_file():
                    try:
                        k = load_key(p, private=False)
                    except ValueError as exc:
                        # A damaged key file is the operator's to fix: this meter's reports are
                        # refused (and alerted) meanwhile; it must not stop the source for all.
                        log.error("%s: %s", self.name, exc)
                        raise Rejected("forged", f"no usable key for meter {meter!r}: {exc}"[:300]) from None
                    self.keys[meter] = k
                    break
        return k

    def check(self, topic: str, payload: bytes) -> dict:
        """The report, or :class:`Rejected` with the reason (see the module)."""
        return self._check(topic, payload)[0]

    def _check(self, topic: str, payload: bytes, hold: bool = False) -> tuple[dict, float | None, bool]:
        """The report; when it was taken by its counter with its signed time outside the window,
        that time's offset from now (s); and whether it was taken on first contact (edg58).
        :class:`Rejected` with the reason otherwise."""
        if len(payload) > self.max_bytes:
            raise Rejected("malformed", f"{len(payload)} bytes, more than max_bytes {self.max_bytes}")
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected("malformed", f"not JSON ({exc})"[:200]) from None
        except RecursionError:
            raise Rejected("malformed", "JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise Rejected("malformed", f"expected a JSON object, got {type(doc).__name__}")
        for f, types in (("meter_id", str), ("counter", int), ("ts", (int, float)), ("status", str), ("alg", str),
                         ("sig", str), ("event", str)):
            v = doc.get(f)
            if v is None or isinstance(v, bool) or not isinstance(v, types):
                raise Rejected("malformed", f"field {f!r} missing or not a {getattr(types, '__name__', 'number')}")
        if not math.isfinite(doc["ts"]) or doc["counter"] < 1:
            raise Rejected("malformed", "field 'ts' not finite or 'counter' below 1")
        if not 0 <= doc["ts"] < 1e10:   # seconds since the epoch, before 2286 (a time the alert can carry)
            raise Rejected("malformed", f"field 'ts': {doc['ts']!r} is not a time in seconds since the epoch"[:200])
        if doc["status"] not in STATUSES:
            raise Rejected("malformed", f"field 'status': unknown {doc['status']!r}"[:200])
        if "evidence" in doc and not isinstance(doc["evidence"], dict):
            raise Rejected("malformed", "field 'evidence' is not an object")
        for f in ("cycle_start", "cycle_end"):
            if f in doc:
                try:
                    t = pd.Timestamp(doc[f]) if isinstance(doc[f], str) else None
                except (ValueError, OverflowError):
                    t = None
                if t is None or t is pd.NaT or t.tzinfo is None:
                    raise Rejected("malformed", f"field {f!r}: not a time with a zone: {doc[f]!r}"[:200])
        d = doc.get("delta_a")
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d)):
            raise Rejected("malformed", "field 'delta_a' is not a number")
        parts = topic.split("/")
        topic_meter = parts[1] if len(parts) >= 3 else None
        meter = doc["meter_id"]
        if not METER_ID.match(meter):
            raise Rejected("malformed", "field 'meter_id' is not a valid meter id")
        if topic_meter != meter:
            raise Rejected("forged", f"signed meter {meter!r} published on another meter's topic")
        key = self._key(meter)
        if key is None:
            raise Rejected("forged", f"no key for meter {meter!r}")
        alg, k = key
        if doc["alg"] != alg:
            raise Rejected("forged", f"algorithm {doc['alg']!r}, the meter's key is {alg}"[:200])
        try:
            ok = verify(doc, alg, k)
        except ValueError:  # NaN or the like in the payload: cannot be canonical
            raise Rejected("malformed", "payload cannot be put in canonical form") from None
        if not ok:
            raise Rejected("forged", "signature does not verify")
        now = self.clock()
        off = doc["ts"] - now
        if not self._behind_checked:
            self._check_behind()
        first = False
        with self._state_lock:
            seen = self.seen.get(meter) or {}
            rec = self.record.get(meter, 0)
            top = max(max(seen) if seen else 0, rec)
            c, d = doc["counter"], digest(doc)
            if c in seen:
                if seen[c] == d:
                    raise Rejected("duplicate", f"report {c} again (a QoS 1 redelivery or a copy: no effect)")
                raise Rejected("replayed", f"counter {c} already used by another report")
            if c <= top - self.reorder:
                raise Rejected("replayed", f"counter {c} older than the last {self.reorder} accepted (latest {top})")
            if c == rec and rec > (max(seen) if seen else 0):
                # (edg58) The latest counter the head-end's record says it took, while the (restored)
                # checkpoint does not hold it: that report was taken before the restore.
                if self.digests.get(meter) == d:
                    # (edg59) That very report (its digest recorded with the counter): the broker's
                    # redelivery after a crash between the record and the checkpoint (its PUBACK had
                    # not left), or a recording of it. Its alert was stored before the record was
                    # written, unless the store was since restored from an older backup: then the
                    # copy is dropped without the alert coming back (nothing new is accepted).
                    raise Rejected("duplicate", f"report {c} again (the head-end's counter record holds "
                                                "its digest: a QoS 1 redelivery or a copy: no effect)")
                raise Rejected("replayed", f"counter {c} already accepted (the head-end's counter record "
                                           f"{self.state_file}; the checkpoint restored is older)")
            if abs(off) > self.window_s and not seen and not rec and c == 1 and self.first_contact:
                # (edg58) Trust on first contact: the meter's very first report (counter 1: its tamper
                # log has never signed another) from a meter this head-end has never taken a report
                # of, by its checkpoint and by its counter record. Its signature is verified; only a
                # recording of this one report could be replayed, and only into a head-end that never
                # heard from the meter. Taken with WARN_CLOCK_SKEW (first_contact); from then on the
                # meter is known and its counter decides.
                first = True
            elif abs(off) > self.window_s and not seen and not rec:
                # Nothing vouches for the counter of a meter the head-end holds no report of: only
                # the time can tell this report from a recording of an old one.
                raise Rejected("replayed", f"signed at {_iso(doc['ts'])} "
                                           f"({_offset(off)}), outside the {self.window_s:g} s window, and no earlier "
                                           "report of this meter vouches for its counter (a meter whose clock is off "
                                           "from its first report: set its clock; only its report with counter 1 "
                                           "is taken on first contact)")
            if abs(off) > self.window_s and c < top and not first:
                # (rev51) A counter below the latest one taken, not among those held, is vouched for
                # by nothing either: the head-end may never have held it (a checkpoint lost, a
                # report refused while the meter was unknown) and a recording of an old report
                # looks exactly like this. Only a counter above the latest is new for certain.
                raise Rejected("replayed", f"signed at {_iso(doc['ts'])} ({_offset(off)}), outside the "
                                           f"{self.window_s:g} s window, and its counter {c} is below the latest "
                                           f"counter accepted from this meter ({top}): only a newer counter is taken "
                                           "outside the window (the meter signs anew a report acknowledged late)"
                                           + (f"; the head-end's counter record {self.state_file} holds {rec}, "
                                              "above the checkpoint restored: a report signed since that backup"
                                              if rec > (max(seen) if seen else 0) else ""))
            seen = self.seen.setdefault(meter, seen)
            seen[c] = d
            if hold:   # (rev58) not in the record nor the checkpoint until its alert is stored
                self._pending.setdefault(meter, set()).add(c)
            for old in sorted(seen)[:-self.reorder]:
                del seen[old]
        return doc, (off if abs(off) > self.window_s else None), first

    # ------------------------------------------------------------------------ counter record (edg58)

    @staticmethod
    def _read_record(path: Path) -> tuple[dict[str, int], dict[str, str]]:
        """The counter record: ``{"meters": {meter: highest counter accepted}, "digests": {meter:
        digest of the report at that counter}}`` (``digests`` since edg59: a record without it, or
        without a meter in it, loads as before). A damaged one is an error naming the file (it is
        what stops replays after a restore: not silently dropped)."""
        if not os.path.lexists(path):
            return {}, {}
        try:
            # (rev58) Opened without blocking (a FIFO hung the head-end's start), a regular file of
            # a bounded size (a huge one was read whole), every entry a meter and a counter (one that
            # is not was dropped silently: that meter's replays were taken).
            doc = json.loads(atomicfile.read_regular(path, RECORD_MAX_BYTES))
            meters = doc["meters"]
            if not isinstance(meters, dict):
                raise TypeError("'meters' is not a table")
            bad = [m for m, c in meters.items() if not METER_ID.fullmatch(m) or isinstance(c, bool)
                   or not isinstance(c, int) or c < 1]
            if bad:
                raise ValueError(f"entries that are not a meter and a counter >= 1: "
                                 f"{', '.join(repr(m)[:70] for m in bad[:3])}")
            digests = doc.get("digests", {})
            if not isinstance(digests, dict):
                raise TypeError("'digests' is not a table")
            bad = [m for m, d in digests.items() if m not in meters or not isinstance(d, str) or not DIGEST.match(d)]
            if bad:
                raise ValueError(f"digests that are not a SHA-256 digest of a meter with a counter: "
                                 f"{', '.join(repr(m)[:70] for m in bad[:3])}")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValueError(f"{path}: the tamper head-end's counter record is damaged ({type(exc).__name__}: "
                             f"{exc}"[:300] + "); restore it from the head-end's host, or move it aside to start "
                             "one anew (replays of reports signed since the store's checkpoint are then not "
                             "refused)") from None
        return dict(meters), dict(digests)

    def hold_record(self) -> None:
        """(rev58) Hold the counter record for this source while it runs (an exclusive ``flock`` on
        ``<state_file>.lock``): two head-ends (two watchers, or two sources of one) writing one
        record overwrote each other's meters, and one record then stopped nothing. ValueError if
        another holds it. The record is read again under the lock (another may have written it
        since this source was built)."""
        if self.state_file is None or self._record_fd is not None:
            return
        import fcntl

        lock = self.state_file.with_name(self.state_file.name + ".lock")
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            raise ValueError(f"counter record {self.state_file}: cannot open its lock {lock}: "
                             f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(f"counter record {self.state_file} is in use by another tamper source (another "
                             "watcher, or another [[sources]] table): give each its own state_file") from None
        self._record_fd = fd
        try:
            now, now_digests = self._read_record(self.state_file)
        except ValueError:
            self._free_record()
            raise
        with self._record_lock:
            record = {m: max(c, self.record.get(m, 0)) for m, c in now.items()} | \
                {m: c for m, c in self.record.items() if m not in now}
            digests = _digests_at(record, (now, now_digests), (self.record, self.digests))
            with self._state_lock:
                self.record, self.digests = record, digests
            self._recorded, self._recorded_digests = dict(now), dict(now_digests)

    def _free_record(self) -> None:
        fd, self._record_fd = self._record_fd, None
        if fd is not None:
            os.close(fd)   # releases the flock

    async def run(self, emit, stop) -> None:
        self.hold_record()
        await super().run(emit, stop)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._free_record()

    def _write_record(self, tops: dict[str, tuple[int, str]]) -> None:
        """Write the counter record (new file, fsync, rename, fsync of the folder: a crash leaves the
        old or the new one, whole). Its counters only ever rise. ``tops``: meter -> (its latest
        counter in the checkpoint, that report's digest)."""
        with self._record_lock:
            self._write_record_locked(tops)

    def _write_record_locked(self, tops: dict[str, tuple[int, str]]) -> None:
        merged = {m: max(c, self.record.get(m, 0)) for m, (c, _) in tops.items()}
        merged.update({m: c for m, c in self.record.items() if m not in merged})
        # (edg59) Each meter's digest at its merged counter: the record's own if its counter did not
        # rise, else the checkpoint's, taken only if it is one (a restored checkpoint's are not
        # checked: anything else written here would make the next start refuse the record).
        digests, rc, rd = {}, self.record, self.digests
        for m, c in merged.items():
            if rc.get(m) == c and m in rd:
                digests[m] = rd[m]
                continue
            t = tops.get(m)
            if t is not None and t[0] == c and isinstance(t[1], str) and DIGEST.match(t[1]):
                digests[m] = t[1]
        if merged == self._recorded and digests == self._recorded_digests:
            return
        path = self.state_file

        def text(digests):
            return json.dumps({"meters": dict(sorted(merged.items())), "digests": dict(sorted(digests.items())),
                               "written": _iso(self.clock())})   # ASCII: its length is its size

        body = text(digests)
        if len(body) > RECORD_MAX_BYTES and digests:
            # (rev59) A record the next start would refuse as larger than the cap ("damaged": the
            # head-end stopped) is written without its digests, as edg58 wrote it: counters only
            # (the crash-window redelivery is then ``replayed`` again; nothing is taken).
            digests = {}
            body = text(digests)
            self.counters["record_digests_dropped"] += 1
            if logged_nth(self.counters["record_digests_dropped"]):
                log.error("%s: the counter record %s with its digests would be larger than %s bytes: written "
                          "without its digests (a report redelivered after a crash is then refused as a replay)",
                          self.name, path, f"{RECORD_MAX_BYTES:,}")
        try:
            if len(body) > RECORD_MAX_BYTES:
                # (rev59) Not written: the next start would refuse it; the old one stays loadable.
                raise OSError(f"{len(body):,} bytes, larger than the {RECORD_MAX_BYTES:,} a start reads")
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new file of its own beside it (never written through a symlink or a leftover),
            # fsync'd, renamed over the record, the folder fsync'd (wattwatch.atomicfile).
            atomicfile.write_text(path, body)
        except OSError as exc:
            self.counters["record_failed"] += 1
            if logged_nth(self.counters["record_failed"]):
                log.error("%s: cannot write the counter record %s (%s): a store restored from a backup would "
                          "take replays of reports signed since", self.name, path, exc.strerror or exc)
            return
        with self._state_lock:   # (edg59) read together by _check
            self.record, self.digests = merged, digests
        self._recorded, self._recorded_digests = dict(merged), dict(digests)

    def _check_behind(self) -> None:
        """Say (once) which meters the restored checkpoint holds older counters of than the
        counter record: the store was restored from a backup or lost its checkpoint."""
        self._behind_checked = True
        with self._state_lock:
            behind = {m: (max(self.seen[m]) if self.seen.get(m) else 0, c) for m, c in self.record.items()
                      if c > (max(self.seen[m]) if self.seen.get(m) else 0)}
        self.behind = behind
        if not behind:
            return
        self.counters["checkpoint_behind"] = len(behind)
        ex = ", ".join(f"{m}: checkpoint {a or 'none'}, record {b}" for m, (a, b) in list(behind.items())[:3])
        log.error("%s: the checkpoint is older than the counter record %s for %d meter(s) (%s): the store was "
                  "restored from a backup or lost its checkpoint. Reports of these meters with a counter up to the "
                  "record's (recorded reports signed since the backup) are refused as replays; their newer reports "
                  "are taken as usual. Nothing to do if the restore was intended; do not delete or restore %s with "
                  "the store: it is what refuses those replays", self.name, self.state_file, len(behind), ex,
                  self.state_file)

    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        return self._take(topic, payload)[0]

    def _take(self, topic: str, payload: bytes, hold: bool = False) -> tuple[list[Alert], tuple[str, int] | None]:
        """The alerts of one report and, when it was taken, its (meter, counter); with ``hold`` that
        counter stays out of the record and the checkpoint until :meth:`committed` (rev58)."""
        try:
            doc, skew, first = self._check(topic, payload, hold)
        except Rejected as r:
            self.counters[r.reason] += 1
            if r.reason == "duplicate":
                return [], None
            n = self.counters[r.reason]
            if logged_nth(n):
                log.warning("%s: %s report #%d on %s: %s", self.name, r.reason, n, log_safe(topic)[:200], r.detail)
            return [self._security_alert(topic, r)], None
        self.counters["accepted"] += 1
        out = self._newest_only(doc, self.alerts_of(doc))
        if skew is not None:
            self.counters["clock_skew"] += 1
            n = self.counters["clock_skew"]
            if logged_nth(n):
                log.warning("%s: report %d of meter %s signed %s: taken %s (clock skew #%d)", self.name,
                            doc["counter"], log_safe(doc["meter_id"]), _offset(skew),
                            "on first contact" if first else "by its counter", n)
            out.append(self._skew_alert(doc, skew, first))
        return out, (doc["meter_id"], doc["counter"])

    def _skew_alert(self, doc: dict, off: float, first: bool = False) -> Alert:
        """``WARN_CLOCK_SKEW`` for a report taken by its counter while its signed time is outside the
        window: one alert per meter and hour, its count and latest offset growing."""
        meter = doc["meter_id"]
        now = self.clock()
        hour = math.floor(now / 3600) * 3600
        with self._state_lock:
            self._prune(hour)
            s = self._skew.setdefault((meter, hour), {"count": 0, "first": now, "max_abs_s": 0.0})
            s["count"] += 1
            s["last"] = now
            s["offset_s"] = round(off, 3)
            s["max_abs_s"] = max(s["max_abs_s"], round(abs(off), 3))
            s["first_contact"] = s.get("first_contact", False) or first
            facts = dict(s)
        how = ("taken on first contact: its first report ever (counter 1), from a meter this head-end holds no "
               "report of, its signature verified" if first else "taken by its counter")
        return Alert(meter_id=meter, start=_iso(hour), end=_iso(facts["last"]), code=CLOCK_CODE, severity="warning",
                     score=0.75, detector="edge_clock",
                     message=(f"meter {meter} signed its report {doc['counter']} {_offset(off)} (the head-end's "
                              f"window is {self.window_s:g} s): its clock is off, or the report was held up (a "
                              f"broker outage); {how}")[:300],
                     evidence={"count": facts["count"], "offset_s": facts["offset_s"],
                               "max_abs_offset_s": facts["max_abs_s"],
                               "counter": doc["counter"], "signed_at": _iso(doc["ts"]),
                               "received_at": _iso(facts["last"]), "first": _iso(facts["first"]),
                               "window_s": self.window_s, "first_contact": facts["first_contact"]},
                     action="check the meter's time sync (NTP/GNSS); its reports are still taken by their counter, "
                            "but a meter whose clock is wrong stamps its events at the wrong time")

    def _newest_only(self, doc: dict, alerts: list[Alert]) -> list[Alert]:
        """Drop the alert of a report older (lower counter) than one already taken for the same
        event: the newer report's status stands (counted as ``stale``)."""
        if not alerts:
            return alerts
        meter, c = doc["meter_id"], doc["counter"]
        keep = []
        with self._state_lock:
            mine = self.newest.setdefault(meter, {})
            for a in alerts:
                if mine.get(a.id, -1) > c:
                    self.counters["stale"] += 1
                    log.info("%s: report %d of meter %s is older than report %d of the same event: "
                             "the newer one stands", self.name, c, log_safe(meter), mine[a.id])
                    continue
                mine.pop(a.id, None)
                mine[a.id] = c
                keep.append(a)
            while len(mine) > self.reorder:
                del mine[next(iter(mine))]
        return keep

    def _prune(self, hour: float) -> None:
        """(rev51) Forget the hourly tallies of hours before the last one, once an hour (under
        ``_state_lock``): an alert per meter and hour needs only the current hour's, and kept they
        grew by one per meter and hour for the life of the head-end."""
        if hour > self._tally_hour:
            self._tally_hour = hour
            for d in (self._skew, self._security):
                for k in [k for k in d if k[1] < hour - 3600]:
                    del d[k]

    def _security_alert(self, topic: str, r: Rejected) -> Alert:
        parts = topic.split("/")
        meter = parts[1] if len(parts) >= 3 and METER_ID.match(parts[1]) else "(unknown)"
        now = self.clock()
        hour = math.floor(now / 3600) * 3600
        with self._state_lock:
            self._prune(hour)
            s = self._security.setdefault((meter, hour), {**{k: 0 for k in REASONS}, "first": now})
            s[r.reason] += 1
            s["last"] = now
            s["detail"] = r.detail
            counts = {k: s[k] for k in REASONS}
        total = sum(counts.values())
        attack = counts["forged"] + counts["replayed"] > 0
        said = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        return Alert(meter_id=meter, start=_iso(hour), end=_iso(s["last"]), code=SECURITY_CODE,
                     severity="critical" if attack else "warning", score=1.0 if attack else 0.75,
                     detector="edge_security",
                     message=f"tamper reports for meter {meter} refused this hour: {said}; last: {r.detail}"[:300],
                     evidence={**counts, "count": total, "topic": log_safe(topic)[:200], "first": _iso(s["first"]),
                               "last": _iso(s["last"]), "detail": r.detail},
                     action="check the meter's key and the network path to the head-end; refused reports "
                            "were not taken as tamper events")

    def alerts_of(self, doc: dict) -> list[Alert]:
        status = doc["status"]
        ev = dict(doc.get("evidence") or {})
        meter = doc["meter_id"]
        start = doc.get("cycle_start") or _iso(doc["ts"])
        end = doc.get("cycle_end") or start
        if not isinstance(start, str) or not isinstance(end, str):
            return []
        extra = {"counter": doc["counter"], "signed_at": _iso(doc["ts"]), "event": doc["event"], "source": "edge"}
        if status in ("tamper", "cleared"):
            kind = doc.get("kind") if doc.get("kind") in ("neutral_bypass", "partial_earth_return") else "partial_earth_return"
            delta = doc.get("delta_a")
            limit = ev.get("limit_a")
            ratio = delta / limit if isinstance(delta, (int, float)) and isinstance(limit, (int, float)) and limit > 0 else 1.0
            score = round(1 - 0.5 ** max(ratio, 1.0), 4)
            what = "neutral current missing" if kind == "neutral_bypass" else "part of the return current bypasses the neutral"
            msg = (f"{what} at the meter: ΔI {delta} A (limit {limit} A), neutral {ev.get('i_n_a')} A while the phase "
                   f"carries {ev.get('i_l_a')} A ({kind.replace('_', ' ')})")
            if status == "cleared":
                msg += f"; cleared at {doc.get('cleared_at')}"
            return [Alert(meter_id=meter, start=start, end=end, code="ERR_IMBAL_LIMIT_EXCEEDED",
                          severity="critical" if kind == "neutral_bypass" else "warning", score=score,
                          detector="edge_tamper", message=msg[:400],
                          evidence={**ev, "kind": kind, "delta_a": delta, "status": status,
                                    "cleared_at": doc.get("cleared_at"), **extra},
                          action="inspect the meter's neutral wiring and seals on site; possible energy diversion")]
        if status in ("signal_noisy", "signal_ok"):
            return [Alert(meter_id=meter, start=start, end=end, code="STATUS_SIGNAL_NOISY", severity="info",
                          score=0.5, detector="edge_harmonics",
                          message=f"current THD {ev.get('thd_i_pct')} % at the meter (3rd {ev.get('h3_pct')} %, "
                                  f"5th {ev.get('h5_pct')} %): RMS readings unreliable"[:400],
                          evidence={**ev, "status": status, **extra},
                          action="non-linear loads; the meter judges the neutral on the fundamental meanwhile")]
        return []  # an on-demand status report: accepted, nothing to alert

    # ------------------------------------------------------------------------ checkpoint

    def position(self) -> dict:
        with self._state_lock:
            # (rev58) Without the reports whose alerts are not stored yet (see ``_pending``).
            pend = self._pending
            seen = {m: [[c, d] for c, d in sorted(v.items()) if m not in pend or c not in pend[m]]
                    for m, v in self.seen.items()}
            pos = {"seen": seen,
                   "newest": {m: [[i, c] for i, c in v.items()] for m, v in self.newest.items()}}
            tops = {m: (v[-1][0], v[-1][1]) for m, v in seen.items() if v}   # (edg59) with its digest
        if self.state_file is not None:
            # Before the store commits this checkpoint: the record is never behind it (a crash in
            # between leaves the record ahead, which only refuses what was already taken).
            self._write_record(tops)
        return pos

    def restore(self, position: dict) -> None:
        seen = (position or {}).get("seen") or {}
        with self._state_lock:
            for m, pairs in seen.items():
                if not isinstance(pairs, list):
                    continue
                mine = self.seen.setdefault(str(m), {})
                for p in pairs:
                    if isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and not isinstance(p[0], bool):
                        mine.setdefault(p[0], str(p[1]))
                for old in sorted(mine)[:-self.reorder]:
                    del mine[old]
            newest = (position or {}).get("newest") or {}
            for m, pairs in (newest.items() if isinstance(newest, dict) else ()):
                if not isinstance(pairs, list):
                    continue
                mine = self.newest.setdefault(str(m), {})
                for p in pairs:
                    if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], int) \
                            and not isinstance(p[1], bool):
                        mine[p[0]] = max(p[1], mine.get(p[0], p[1]))
                while len(mine) > self.reorder:
                    del mine[next(iter(mine))]
        self._behind_checked = False   # said at the first report after the restore


def _digests_at(counters: dict[str, int], *sources: tuple[dict[str, int], dict[str, str]]) -> dict[str, str]:
    """(edg59) For each meter of ``counters``, the digest of its report at that counter: from the
    first of ``sources`` (counters, digests) that holds one at the same counter (none if none does:
    a record written before edg59, or a counter only a restored backup's record knows)."""
    out = {}
    for m, c in counters.items():
        for cs, ds in sources:
            if cs.get(m) == c and m in ds:
                out[m] = ds[m]
                break
    return out


def default_record(name: str, config: Path | None = None) -> str:
    """(rev58) The counter record's default file name: the source name made a plain file name (a
    name with "/" or ".." put it in another folder, created if need be), after the site config's
    own name (two configs in one folder, each with an unnamed ``tamper`` source, shared one)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "tamper"
    return f"{Path(config).stem}.{stem}.counters.json" if config is not None else f"{stem}.counters.json"


def from_spec(name: str, spec: dict, root=None) -> TamperSource:
    from wattwatch.sources import only, resolve

    only(spec, {"host", "port", "topics", "telemetry", "qos", "meter", "meters", "fields", "scale", "client_id",
                "username", "password", "password_env", "batch_s", "keepalive", "tls_ca", "tls_cert", "tls_key", "keys",
                "keys_dir", "window_s", "max_bytes", "reorder", "state_file", "first_contact"})
    spec = password_from_env(tls_paths(spec, root))
    if "keys" in spec:
        if not isinstance(spec["keys"], dict) or not all(isinstance(p, str) for p in spec["keys"].values()):
            raise ValueError("keys must be a table: meter id -> key file (a path)")
        spec["keys"] = {m: str(resolve(p, root)) for m, p in spec["keys"].items()}
    if "keys_dir" in spec and not isinstance(spec["keys_dir"], str):
        raise ValueError(f"keys_dir must be a folder (a path), got {spec['keys_dir']!r}")
    if "keys_dir" in spec:
        spec["keys_dir"] = str(resolve(spec["keys_dir"], root))
    # (edg58) The counter record lives beside the site config unless given: not in the store, so a
    # store restored from a backup does not roll it back. ``state_file = ""`` goes without, and so
    # does a source built without a config file (no folder to put it in).
    # (rev58) A site config names its file in the default (api.load_site): see default_record.
    sf = spec.get("state_file", default_record(name) if root is not None else "")
    if not isinstance(sf, str):
        raise ValueError(f"state_file must be a file (a path), got {sf!r}")
    spec["state_file"] = str(resolve(sf, root)) if sf else None
    return TamperSource(name, **spec)
