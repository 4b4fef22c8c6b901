"""thermal_drift: the heating coefficient's error from the same week's residuals is the same read
every second, minute or 15 minutes (rq8). The one-reading correlation taken back from 15 minutes
(``rho_k ** (1 / k)``) was clipped at 0.99: at 1 s a drift of two hours' correlation time is 0.99986
from one reading to the next, and the clip cut the widening from ~14000 to 199, the error to ~0.12
of the 15-minute one. A correlation gone by 15 minutes keeps the one-reading one (as before q8)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from wattwatch.detect.rules.thermal import ThermalDrift

WEEK = 7 * 86400.0


def _se(cad: float, tau_s: float, seed: int = 3, white: float = 0.0, plain: bool = False) -> float:
    """One meter's week read every ``cad`` s: residuals an exact AR(1) sampling of a drift with
    correlation time ``tau_s`` (1 °C), plus ``white`` °C of sensor noise; a heating regressor
    that swings over hours."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, WEEK, cad)
    n = len(t)
    phi = np.exp(-cad / tau_s)
    e = rng.standard_normal(n) * np.sqrt(1 - phi ** 2)
    e[0] = rng.standard_normal()
    # AR(1) by a linear filter, vectorised (y[i] = phi y[i-1] + e[i]).
    r = lfilter([1.0], [1.0, -phi], e) + white * rng.standard_normal(n)
    day = 2 * np.pi * t / 86400.0
    X = [np.ones(n), 1 + np.sin(2 * np.pi * t / (7 * 3600.0)), np.sin(day), np.cos(day)]
    seg, ok = np.zeros(n, np.int64), np.ones(n, bool)
    if plain:  # least squares' own error, no widening
        return float(r.std() * np.sqrt(np.linalg.inv(np.array([[a @ b for b in X] for a in X]))[1, 1]))
    se, _ = ThermalDrift._heat_se(seg, 1, ok, r, np.array([r.std()]), X, np.array([cad]))
    return float(se[0])


@pytest.mark.parametrize("cad", [1.0, 60.0, 300.0])
def test_a_slow_drifts_heating_error_does_not_shrink_with_the_cadence(cad):
    fine, fifteen = _se(cad, 7200.0), _se(900.0, 7200.0)
    assert 0.7 < fine / fifteen < 1.4, (fine, fifteen)


def test_residuals_whose_correlation_has_died_by_15_minutes_keep_their_one_reading_widening():
    """Correlation time 2 minutes, read every minute: 0.61 from one reading to the next (widening
    4.1, the error 2x least squares'), nothing at 15 minutes (widening 1)."""
    se, plain = _se(60.0, 120.0), _se(60.0, 120.0, plain=True)
    assert 1.6 < se / plain < 2.5, (se, plain)
