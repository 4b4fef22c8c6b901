"""loose_ct's description reads its medians and its current's 10th and 90th percentiles from one sort
of their stack (lq, lx: issue 16, each open alert is described again at a live step): the same floats
as ``np.nanmedian`` and ``np.nanpercentile``, bit for bit, on arrays with NaN, ties, zeros of either
sign, infinities, and fewer than two numbers."""

from __future__ import annotations

import warnings

import numpy as np

from wattwatch.detect.rules.loosect import _nanmedians, _nanpercentile, _sorted_rows


def _bits(x) -> bytes:
    x = np.float64(x)
    return b"nan" if np.isnan(x) else x.tobytes()   # (NaN's sign: rnd and the message read none)


def test_sorted_medians_and_percentiles_are_numpys():
    rng = np.random.default_rng(6419)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for it in range(1500):
            n = int(rng.integers(0, 40))
            x = rng.random(n) * 10 ** rng.uniform(-3, 3)
            kind = it % 6
            if kind == 1:
                x = np.round(x, 1)
            elif kind == 2:
                x[rng.random(n) < 0.3] = np.nan
            elif kind == 3 and n:
                x[rng.integers(n)] = rng.choice([np.inf, -np.inf, 0.0, -0.0])
            elif kind == 4:
                x = np.where(rng.random(n) < 0.5, np.nan, 0.0)
            elif kind == 5:
                x = rng.integers(0, 3, n) * 0.2
            m = np.vstack([x, x[::-1]]) if n else np.zeros((2, 0))
            srt = _sorted_rows(m)
            med = _nanmedians(*srt)
            for r in range(2):
                assert _bits(med[r]) == _bits(np.nanmedian(m[r]) if n else np.nan), (m[r], med[r])
            for q in (10, 90):
                want = np.nanpercentile(x, q) if n else np.nan
                assert _bits(_nanpercentile(m[1], q, srt, 1)) == _bits(want), (x, q)
