"""Actions of ``wattwatch watch``: alerts that act (``[[actions]]`` in a site config, issue 16).

An action is a :class:`wattwatch.sinks.Output`: after each step it sees the alerts the store has
just opened, grown or ended, keeps those that match (code, severity, meter glob, meter tags; the
events it is for: ``opened``, ``updated``, ``ended``, ``stopped``, ``withdrawn``: late readings or a
final verdict withdrew it, see :mod:`wattwatch.actions.base`), applies its rate limits, and hands each
one to its own worker thread through a bounded queue, so a slow webhook never stalls judging.
Every action taken (or refused, rate-limited, dropped, failed) is logged in the store's
``actions_log`` table with the alert id (``wattwatch alerts show ID``).

Actions are **dry runs unless** ``dry_run = false``: a dry run logs what it would do and does
nothing else. Kinds (see each module for its keys):

- ``modbus_write``: a coil or holding-register write through pymodbus, only to an allow-list of
  device/address/value, with read-back confirmation, timeout and retries;
- ``command``: an argv list run without a shell (absolute executable path), the alert as JSON on
  stdin, a timeout that kills it, exit code and stderr tail logged;
- ``webhook``: a JSON POST signed with ``X-Wattwatch-Signature: sha256=<HMAC-SHA256 of the
  body>`` (secret from ``secret_env``), retried with exponential backoff;
- ``mqtt_publish``: a JSON message at QoS 1 on a topic made from the meter and the code.

A kind is registered in :data:`KINDS` as ``"module:function"`` like :data:`wattwatch.sinks.KINDS`.
"""

from __future__ import annotations

# type -> "module:function(name, spec, root) -> Action"
KINDS: dict[str, str] = {
    "modbus_write": "wattwatch.actions.modbus:from_spec",
    "command": "wattwatch.actions.command:from_spec",
    "webhook": "wattwatch.actions.webhook:from_spec",
    "mqtt_publish": "wattwatch.actions.mqtt:from_spec",
}

__all__ = ["KINDS"]
