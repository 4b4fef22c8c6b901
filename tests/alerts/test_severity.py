"""Severity tiers (issue 13 item 6): from the fault's consequence (per code) and the calibrated score.

Fail on 83dfb55: no ``codes.severity``; neutral tamper at a partial earth return was 'warning' at
any score, a baseline deviation 'warning' at any score, packet loss 'critical' at any score."""

from __future__ import annotations

import pytest

from wattwatch.codes import FAULT_CODES, NORMAL_EVENTS, SEVERITIES, SEVERITY_POLICY, score_tier, severity
from wattwatch.detect import registry


def test_every_code_a_detector_or_a_fault_names_has_a_documented_tier():
    codes = {registry.build(n).code for n in registry.names()} | set(FAULT_CODES.values()) | \
        {c for c in NORMAL_EVENTS.values() if c}
    assert codes <= set(SEVERITY_POLICY)
    for code, (floor, ceiling, _, why) in SEVERITY_POLICY.items():
        assert SEVERITIES.index(floor) <= SEVERITIES.index(ceiling) and why, code


def test_score_tiers_follow_the_calibration():
    # calibrated score: 0.5 at the limit, 0.75 at twice it, 0.875 at three times it
    assert [score_tier(s) for s in (0.5, 0.74, 0.75, 0.87, 0.875, 1.0, None, float("nan"))] == \
        ["info", "info", "warning", "warning", "critical", "critical", "info", "info"]


@pytest.mark.parametrize("code", [c for c in SEVERITY_POLICY if c.startswith("ERR_")])
def test_err_codes_are_never_below_warning_and_reach_critical(code):
    assert severity(code, 0.5, "info") == "warning"
    assert severity(code, 0.95, "warning") == "critical"
    assert severity(code, 0.5, "critical") == "critical"  # a neutral bypass is critical at any score


def test_partial_earth_return_far_past_its_limit_is_critical():
    assert severity("ERR_IMBAL_LIMIT_EXCEEDED", 0.9, "warning") == "critical"


def test_statistical_findings_are_graded_by_score_and_never_critical():
    # window_novelty and the MACD baseline said 'warning' for every alert, whatever the score.
    assert severity("WARN_BASELINE_DEVIATION", 0.55, "warning") == "info"
    assert severity("WARN_BASELINE_DEVIATION", 0.8, "warning") == "warning"
    assert severity("WARN_BASELINE_DEVIATION", 0.99, "critical") == "warning"
    assert severity("WARN_CONSUMPTION_ANOMALY", 0.6, "warning") == "warning"  # the detector's finding raises it


def test_outage_is_information_and_packet_loss_is_graded():
    assert severity("INFO_SUPPLY_OUTAGE", 1.0, "critical") == "info"
    assert severity("ALRM_PKT_LOSS_CRIT", 0.6, "critical") == "warning"
    assert severity("ALRM_PKT_LOSS_CRIT", 0.9, "critical") == "critical"


def test_frozen_readings_keep_the_code_spec_gives_frozen_registers():
    # SPEC §3 lists frozen registers under WARN_CONSUMPTION_ANOMALY and gives them no other code.
    assert registry.build("frozen_readings").code == FAULT_CODES["frozen_register"] == "WARN_CONSUMPTION_ANOMALY"
