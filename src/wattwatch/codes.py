"""Alert codes (SPEC §3) and the fault each labelled event type stands for."""

from __future__ import annotations

# Fault type (as the simulator labels it) -> the alert code that names it.
FAULT_CODES: dict[str, str] = {
    "neutral_bypass": "ERR_IMBAL_LIMIT_EXCEEDED",
    "partial_earth_return": "ERR_IMBAL_LIMIT_EXCEEDED",
    "phase_imbalance": "ERR_PHASE_IMBALANCE_01",
    "open_ct": "SENSOR_FAULT",
    "firmware_drift": "WARN_FIRMWARE_DRIFT",
    "packet_loss": "ALRM_PKT_LOSS_CRIT",
    "thermal_drift": "WARN_THERM_DRIFT",
    "harmonic_noise": "STATUS_SIGNAL_NOISY",
    "theft_under_registration": "WARN_CONSUMPTION_ANOMALY",
    "level_shift": "WARN_CONSUMPTION_ANOMALY",
    "frozen_register": "WARN_CONSUMPTION_ANOMALY",
}
# Normal events that must not raise a fault alert; an outage is reported as information.
NORMAL_EVENTS: dict[str, str | None] = {
    "supply_outage": "INFO_SUPPLY_OUTAGE",
    "register_reset": None,
    "motor_start": None,
}
CONSUMPTION_FAULTS = ("theft_under_registration", "level_shift", "frozen_register")
RULE_FAULTS = tuple(k for k in FAULT_CODES if k not in CONSUMPTION_FAULTS)
