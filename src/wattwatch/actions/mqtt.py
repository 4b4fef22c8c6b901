"""``type = "mqtt_publish"``: publish the alert as JSON on an MQTT topic at QoS 1 (paho-mqtt).

Keys (besides the common ones of :mod:`wattwatch.actions.base`)::

    host = "127.0.0.1"
    port = 1883
    topic = "site/alerts/{meter_id}/{code}"     # alert fields as {field}
    qos = 1                  # 0, 1 or 2 (default 1)
    retain = false
    timeout_s = 5            # connect, and wait for the broker's acknowledgement
    client_id = "wattwatch-actions"
    username = "..."         # optional; password from the environment: password_env = "VAR"
    tls = true               # TLS with the system's CAs; ca_file = "broker-ca.pem" (implies tls)
                             # trusts that CA instead (relative to the config file)

A field put into the topic has ``/``, ``+``, ``#`` and control characters replaced by ``_``: a
meter id can neither add topic levels nor make a wildcard (which brokers refuse to publish to).
The message is ``ok`` once the broker acknowledged it (PUBACK at QoS 1); a broker that is down is
``failed`` (paho reconnects in the background for the next one).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from wattwatch.actions.base import COMMON, Action, Result, check_template, fill, flag, number, only, text

_UNSAFE = re.compile(r"[/+#\x00-\x1f\x7f]")


class MqttAction(Action):
    kind = "mqtt_publish"

    def __init__(self, name: str, spec: dict, root: Path | None):
        super().__init__(name, spec)
        only(spec, COMMON | {"host", "port", "topic", "qos", "retain", "timeout_s", "client_id", "username",
                             "password_env", "tls", "ca_file"})
        self.host = text(spec, "host", "127.0.0.1")
        self.port = number(spec, "port", 1883, 1, 65535, True)
        self.topic = check_template(text(spec, "topic", "wattwatch/alerts/{meter_id}/{code}"), "topic")
        if "+" in _FIELD_FREE(self.topic) or "#" in _FIELD_FREE(self.topic):
            raise ValueError(f"topic: wildcards + and # cannot be published to, got {self.topic!r}")
        self.qos = number(spec, "qos", 1, 0, 2, True)
        self.retain = flag(spec, "retain", False)
        self.timeout_s = number(spec, "timeout_s", 5.0, 0.01, 600.0)
        self.client_id = text(spec, "client_id", f"wattwatch-action-{name}")
        self.username = text(spec, "username")
        pw_env = text(spec, "password_env")
        self.password = None
        if pw_env is not None:
            self.password = os.environ.get(pw_env)
            if self.password is None:
                raise ValueError(f"password_env: the environment variable {pw_env} is not set")
        ca = text(spec, "ca_file")
        self.ca_file = None if ca is None else str(Path(ca) if Path(ca).is_absolute() or root is None else root / ca)
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ValueError(f"ca_file: {self.ca_file} is not a file")
        self.tls = flag(spec, "tls", self.ca_file is not None)
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for tls = true")
        self._client = None
        self._connected = threading.Event()
        self._why = ""

    def topic_for(self, alert, event: str) -> str:
        vals = {k: _UNSAFE.sub("_", str(v)) for k, v in self.values(alert, event).items()}
        return fill(self.topic, vals)

    def _connect(self):
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username:
            c.username_pw_set(self.username, self.password)
        if self.tls:
            c.tls_set(ca_certs=self.ca_file)

        def on_connect(cl, ud, fl, rc, pr=None):
            if rc.is_failure:
                self._why = f": broker refused: {rc}"
            else:
                self._why = ""
                self._connected.set()

        c.on_connect = on_connect
        c.on_disconnect = lambda cl, ud, fl, rc, pr=None: self._connected.clear()
        c.reconnect_delay_set(0.5, 30)
        c.connect_async(self.host, self.port, keepalive=30)
        c.loop_start()
        self._client = c

    def perform(self, alert, event: str, dry_run: bool) -> Result:
        topic = self.topic_for(alert, event)
        if dry_run:
            return Result("ok", f"dry run: would publish to {topic} (QoS {self.qos})", 0)
        if self._client is None:
            self._connect()
        if not self._connected.wait(self.timeout_s):
            return Result("failed", f"broker {self.host}:{self.port} not connected within {self.timeout_s:g} s"
                          + self._why)
        info = self._client.publish(topic, self.payload(alert, event), qos=self.qos, retain=self.retain)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            return Result("failed", f"publish to {topic}: {exc}")
        if not info.is_published():
            return Result("failed", f"publish to {topic}: no acknowledgement within {self.timeout_s:g} s")
        return Result("ok", f"published to {topic} (QoS {self.qos}, mid {info.mid})")

    def shutdown(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()


def _FIELD_FREE(t: str) -> str:
    return re.sub(r"\{[^{}]*\}", "", t)


def from_spec(name: str, spec: dict, root: Path | None = None) -> MqttAction:
    return MqttAction(name, spec, root)
