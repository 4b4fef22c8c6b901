"""Alert codes (SPEC §3) and the fault each labelled event type stands for."""

from __future__ import annotations

# Fault type (as the simulator labels it) -> the alert code that names it.
FAULT_CODES: dict[str, str] = {
    "neutral_bypass": "ERR_IMBAL_LIMIT_EXCEEDED",
    "partial_earth_return": "ERR_IMBAL_LIMIT_EXCEEDED",
    "phase_imbalance": "ERR_PHASE_IMBALANCE_01",
    "open_ct": "SENSOR_FAULT",
    "loose_ct": "SENSOR_FAULT",
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
    # A welder, arc furnace or variable-speed drive: current and power jump together (not a loose CT).
    "variable_load": None,
}
CONSUMPTION_FAULTS = ("theft_under_registration", "level_shift", "frozen_register")
RULE_FAULTS = tuple(k for k in FAULT_CODES if k not in CONSUMPTION_FAULTS)

# ------------------------------------------------------------------------------ severity tiers
#
# An alert's severity comes from two things: what the fault costs if nobody acts (the code's
# floor and ceiling below), and how far past its limit the reading went (the calibrated score:
# 0.5 at the limit, 0.75 at twice it, 0.875 at three times it). A detector whose finding is
# physics (a neutral that carries nothing while the phase carries load) may also raise it to
# its code's ceiling. ``ERR_…`` codes are never below warning and reach critical.

SEVERITIES = ("info", "warning", "critical")
WARNING_SCORE = 0.75   # twice the limit
CRITICAL_SCORE = 0.875  # three times the limit

# code -> (floor, ceiling, the detector's own finding may raise it, consequence)
SEVERITY_POLICY: dict[str, tuple[str, str, bool, str]] = {
    "ERR_IMBAL_LIMIT_EXCEEDED": ("warning", "critical", True,
                                 "neutral bypass or earth return: energy theft and a shock hazard on the installation"),
    "ERR_PHASE_IMBALANCE_01": ("warning", "critical", True,
                               "overheats the neutral and the transformer; trips protection"),
    "SENSOR_FAULT": ("warning", "critical", True,
                     "the meter under-registers (billing wrong); an open CT secondary is a shock hazard"),
    "ALRM_PKT_LOSS_CRIT": ("warning", "critical", False,
                           "the meter is partly blind: faults in the gaps go unseen"),
    "WARN_FIRMWARE_DRIFT": ("warning", "critical", True, "billed energy differs from the energy delivered"),
    "WARN_THERM_DRIFT": ("warning", "critical", True, "a connection or the meter runs hot: fire risk"),
    "STATUS_SIGNAL_NOISY": ("info", "warning", True, "RMS readings unreliable; other findings less certain"),
    "INFO_SUPPLY_OUTAGE": ("info", "info", False, "no supply: an event to record, not a meter fault"),
    "WARN_BASELINE_DEVIATION": ("info", "warning", False, "consumption unlike the meter's own history: check site activity"),
    "WARN_CONSUMPTION_ANOMALY": ("info", "warning", True,
                                 "abnormal consumption pattern (under-registration, level shift, frozen register)"),
    "WARN_LINK_SLOW": ("warning", "warning", False,
                       "a device answers ever slower (long cable run, overloaded gateway): polls will start to miss "
                       "their deadline and readings will be lost"),
    "ALRM_PROSUMER_ISOLATE": ("warning", "critical", True, "a prosumer is to be isolated from the grid"),
    "WARN_PROSUMER_PENALTY": ("warning", "warning", False,
                              "a prosumer is not delivering its agreed power and its penalty is growing"),
    # Not a meter fault: an edge meter's signed time is off the head-end's by more than its window
    # (its clock is wrong, or its report was held up); the report was taken by its counter.
    "WARN_CLOCK_SKEW": ("warning", "warning", False,
                        "the meter's clock is off: the times it gives its events and readings are wrong"),
    # Not a meter fault: a report to the head-end refused as forged, replayed or malformed (an
    # attack on the reporting path, or a meter whose key or clock is wrong).
    "ALRM_SECURITY_EVENT": ("warning", "critical", True,
                            "someone may be forging or replaying meter reports to hide or fake a tamper event"),
}
_DEFAULT_POLICY = ("info", "critical", True, "")


def score_tier(score: float | None) -> str:
    """The tier the calibrated score alone gives: critical at three times the limit, warning at
    twice, info below."""
    if score is None or score != score:
        return "info"
    return "critical" if score >= CRITICAL_SCORE else "warning" if score >= WARNING_SCORE else "info"


def severity(code: str, score: float | None, finding: str | None = None) -> str:
    """The severity of an alert of ``code`` with calibrated ``score``: the score's tier (raised
    to the detector's ``finding`` where the code trusts it), held between the code's floor and
    ceiling."""
    floor, ceiling, trust, _ = SEVERITY_POLICY.get(code, _DEFAULT_POLICY)
    rank = SEVERITIES.index
    tier = rank(score_tier(score))
    if trust and finding in SEVERITIES:
        tier = max(tier, rank(finding))
    return SEVERITIES[min(max(tier, rank(floor)), rank(ceiling))]


def severity_rank(name: str) -> int:
    """``info`` 0, ``warning`` 1, ``critical`` 2; ValueError naming the valid ones otherwise."""
    if name not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {name!r}")
    return SEVERITIES.index(name)
