"""baseline_macd's standby drop (a meter profiled on fewer than ``recal_min_profile_days`` days:
the two days' floor judged against the lower half of the profiled floors) streamed a day at a time,
and resumed from a checkpoint, gives every reading the score and every alert the whole history at
once gives. The other stitching tests profile on 30 days, where the standby is not used."""

from __future__ import annotations

import numpy as np
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches
from tests.detect.test_macd_standby import noisy_home
from tests.detect.test_stitch_hours import _resumed


@pytest.mark.parametrize("step", ["15min", "60min"])
def test_the_standby_drop_streamed_a_day_at_a_time_equals_the_whole_history(step):
    frame = noisy_home(step, theft=("2025-01-14", "2025-01-22", 0.35))
    macd = registry.build("baseline_macd").fit(prepare(frame[frame.ts < "2025-01-13"]))
    st = macd.state_["home"]
    assert st["history_days"] < macd.config.recal_min_profile_days and np.isfinite(st["standby_kw"])
    whole = core.run(frame, [macd])
    assert any(a.detector == "baseline_macd" and a.evidence.get("basis") == "floor" for a in whole.alerts), \
        [(a.start, a.message) for a in whole.alerts]

    problems = day_by_day_mismatches(frame, macd, whole, resume_at=4)
    assert not problems, "\n".join(problems[:12])


def day_by_day_mismatches(frame, macd, whole, since: str = "2025-01-13", resume_at: int = 4) -> list[str]:
    """``frame`` fed to a :class:`Stitcher` of ``macd`` (up to ``since`` in one piece, then a day at a
    time), resumed from a checkpoint before piece ``resume_at``: where its scores and alerts differ
    from ``whole``'s (the whole history at once)."""
    t = _epoch(frame["ts"])
    edges = [-np.inf, *np.arange(_epoch(frame["ts"][frame.ts >= since]).min(), t.max(), 86400.0), np.inf]
    sti = Stitcher([macd])
    steps = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k == resume_at:
            sti = _resumed(sti, [macd])
        steps.append(sti.feed(frame[(t > lo) & (t <= hi)]))
    steps.append(sti.flush())
    return _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
