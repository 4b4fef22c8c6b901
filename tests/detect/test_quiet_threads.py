"""``quiet()`` in several threads at once (the live engine's fast tier and its slow tier's worker
both score in quiet blocks): blocks that end in another order than they began keep their
warnings silenced and leave the process's warning filters as they found them (with
``warnings.catch_warnings`` the first to end restored a list without the other's "ignore", and
the last put back a stale one for good)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from wattwatch.detect.base import quiet


def test_quiet_blocks_ended_out_of_order_stay_silent_and_restore_the_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        before = list(warnings.filters)
        a, b = quiet(), quiet()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)   # the other thread's block ends first
        assert np.isnan(np.nanmean(np.array([np.nan])))   # inside b: silenced, not raised
        assert np.isinf(np.array([1.0]) / 0.0)[0]
        b.__exit__(None, None, None)
        assert warnings.filters == before
        with pytest.raises(RuntimeWarning):
            np.nanmean(np.array([np.nan]))


def test_quiet_in_two_threads_never_lets_a_warning_through_nor_stays_on():
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def work():
        go.wait()
        try:
            for _ in range(3000):
                with quiet():
                    np.nanmean(np.array([np.nan]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        before = list(warnings.filters)
        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errors, errors[:1]
        assert warnings.filters == before


def test_quiet_keeps_a_filter_that_was_there_before():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)   # as the CLI sets
        before = list(warnings.filters)
        with quiet():
            pass
        assert warnings.filters == before


def test_quiet_goes_ahead_of_an_error_filter_and_leaves_an_ignore_behind_it_in_place():
    """An "ignore" already in the list but behind an "error" one (a user's -W error after the
    CLI's filter): the quiet block still silences, and the list comes back as it was."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.simplefilter("error", RuntimeWarning)
        before = list(warnings.filters)
        with quiet():
            assert np.isnan(np.nanmean(np.array([np.nan])))
        assert warnings.filters == before
